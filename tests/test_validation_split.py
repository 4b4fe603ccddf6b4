"""--val-fraction on data with a test split of their own: that fraction of each class of the training images scores
the epochs (best.pt, --patience), the test split is kept unseen and scored once, at the end, with best.pt (test.json),
as `convolab evaluate RUN` scores it; compare tests its models on that figure. Before, --val-fraction was not used on
such data (a warning said so), and best.pt and early stopping were chosen on the test images themselves."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
from conftest import write_png_folder

import convolab.data.folder as folder_module
from convolab.cli import main
from convolab.data import load_data
from convolab.data.base import check_subset_counts
from convolab.errors import ConfigError, DataError
from convolab.training import TrainConfig, Trainer, final_test
from convolab.training.metrics import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

RUN = ["lenet5_modern", "--data", "digits", "--batch-size", "64", "--no-progress"]


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    """A digits run of 2 epochs validating on 20% of its training images: its folder and what it printed."""
    out = tmp_path_factory.mktemp("validated") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", *RUN, "--epochs", "2", "--val-fraction", "0.2", "--output", str(out)]) == 0
    return out, printed.getvalue()


def validated_photos_run(tmp_path, batch_size: int):
    """A folder of train/ and test/ photos (10 a class of 3), and a run of one epoch validating on 20% of train/."""
    folder = write_png_folder(tmp_path / "photos", per_class=10, size=16)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--val-fraction", "0.2", "--epochs", "1",
                 "--batch-size", str(batch_size), "--no-progress", "--output", str(run)]) == 0
    return folder, run


def tvt_run_as_written_before_test_was_kept(tmp_path, test_images: int = 24):
    """A folder of train/, val/ (24 each) and test/ (`test_images`), and a run of one epoch on it whose checkpoints
    are as the convolab before wrote them: train/ and val/ its two splits, no validation images, no class counts."""
    folder = write_png_folder(tmp_path / "tvt", per_class=8, size=16)
    shutil.copytree(folder / "test", folder / "val")
    for path in sorted((folder / "test").rglob("*.png"))[:24 - test_images]:
        path.unlink()
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--epochs", "1", "--batch-size", "8",
                 "--no-progress", "--output", str(run)]) == 0
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / name, weights_only=False)
        state["data_images"] = [24, 24]
        del state["validation_images"], state["class_images"]
        torch.save(state, run / name)
    return folder, run


def as_an_older_convolab_recorded(run, val_fraction: float) -> None:
    """The run's config.json and checkpoints as a convolab before the records' revision wrote them: no "record", no
    resolved "validation", and a --val-fraction (every record held one: 0.1, its default, unless given)."""
    config = json.loads((run / "config.json").read_text())
    assert config.pop("record") == 2
    config["resolved"].pop("validation")
    (run / "config.json").write_text(json.dumps(config | {"val_fraction": val_fraction}))
    for name in ("last.pt", "best.pt"):
        state = torch.load(run / name, weights_only=False)
        recorded = json.loads(state["config"])
        del recorded["record"]
        state["config"] = json.dumps(recorded | {"val_fraction": val_fraction})
        torch.save(state, run / name)


def test_the_validation_images_are_held_out_of_the_training_split_and_the_test_split_kept_apart():
    data = load_data("digits")
    held = data.with_validation(0.2)
    assert held.unseen_test is data.test and held.held_out and data.unseen_test is None
    assert len(held.train) + len(held.test) == len(data.train) == 1438
    # every class gives a fifth of its images, and no image is in both splits (each row of pixels is its own)
    for c in range(10):
        assert (held.test.labels == c).sum() == round((data.train.labels == c).sum().item() * 0.2)
    rows = {bytes(image.flatten().tolist()) for image in held.train.images}
    assert not any(bytes(image.flatten().tolist()) in rows for image in held.test.images)
    again = data.with_validation(0.2)  # (drawn alike whatever the run's seed: a comparison's seeds share them)
    assert torch.equal(again.test.labels, held.test.labels) and torch.equal(again.test.images, held.test.images)


def test_a_run_scores_its_epochs_on_validation_images_and_its_unseen_test_split_once(validated_run, capsys):
    out, printed = validated_run
    lines = printed.strip().splitlines()
    assert "(1151 train / 287 validation images, 359 test images kept unseen, 10 classes)" in lines[0], lines[0]
    assert lines[-3].startswith("best validation accuracy ") and "(best.pt, chosen on these validation images)" \
        in lines[-3], lines[-3]
    assert lines[-2].startswith("validation accuracy: "), lines[-2]
    result = json.loads((out / "test.json").read_text())
    assert lines[-1] == (f"test accuracy: {result['top1']:.4f} (best.pt of epoch {result['epoch']}, on the 359 test "
                         f"images no epoch was scored on; {out / 'test.json'})")
    assert result["images"] == 359 and result["validation_images"] == 287 and result["checkpoint"] == "best.pt"
    history = read_metrics(out)
    best = max(history, key=lambda row: row["test_acc"])  # (metrics.csv's test_* columns: the validation images')
    assert result["epoch"] == best["epoch"] and f"best validation accuracy {best['test_acc']:.4f}" in lines[-3]
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["validation"] == {"images": 287, "unseen_test_images": 359}
    # `convolab evaluate RUN` scores the same images with the same checkpoint: the same figure, to the last digit
    assert main(["evaluate", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["images"] == 359 and evaluated["top1"] == result["top1"]
    assert evaluated["checkpoint"]["judged_on"] == "its validation images, not its test images"


def test_its_epoch_lines_name_the_validation_images(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="convolab")
    assert main(["train", *RUN, "--epochs", "1", "--train-subset", "300", "--val-fraction", "0.2", "--patience", "1",
                 "--output", str(tmp_path / "run")]) == 0
    epoch = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1"))
    assert "  val loss " in epoch and "+ val " in epoch and "test" not in epoch, epoch


def test_a_run_without_val_fraction_still_scores_its_epochs_on_the_test_split(digits_run):
    assert not (digits_run / "test.json").exists()
    assert json.loads((digits_run / "config.json").read_text())["resolved"]["validation"] is None
    assert TrainConfig.from_run(digits_run).val_fraction is None


def test_a_run_recorded_before_validation_splits_resumes_as_it_trained(digits_run, tmp_path, capsys):
    """A run whose config.json and last.pt record --val-fraction 0.1, the default then (every run recorded it), on
    data with a test split: it held nothing out, and resumed, it must not start holding out now."""
    run = tmp_path / "old"
    assert main(["train", *RUN, "--epochs", "1", "--output", str(run)]) == 0
    as_an_older_convolab_recorded(run, 0.1)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().splitlines()[-1].startswith("test accuracy: ") and "validation" not in printed
    assert len(Trainer.resume(run).train_labels) == 1438 and not (run / "test.json").exists()


def test_a_streamed_folder_with_a_test_split_validates_and_scores_its_test_folder(tmp_path):
    folder = write_png_folder(tmp_path / "photos", per_class=10, size=24)  # train/ and test/, 3 classes
    out = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--loader", "stream", "--workers", "0",
                 "--val-fraction", "0.3", "--epochs", "1", "--batch-size", "7", "--no-progress",
                 "--output", str(out)]) == 0
    result = json.loads((out / "test.json").read_text())
    assert result["images"] == 30 and result["validation_images"] == 9


def test_compare_tests_its_models_on_the_unseen_test_figure(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", "lenet5", "--data", "digits", "--train-subset", "300", "--val-fraction",
                 "0.2", "--epochs", "1", "--seeds", "2", "--no-progress", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| best val acc | final val acc |" in printed and "| test acc (best.pt) |" in printed
    report = json.loads((out / "results.json").read_text())
    assert [p["figure"] for p in report["significance"]] == ["unseen_test_acc"]
    for model in report["models"]:
        runs = [r for r in report["runs"] if r["model"] == model["model"]]
        values = [r["unseen_test_acc"] for r in runs]
        assert all(isinstance(v, float) for v in values) and model["unseen_test_acc_mean"] == pytest.approx(
            sum(values) / len(values))
    assert "lenet5_modern vs lenet5: test acc (best.pt) " in printed


def test_under_nproc_rank_0_scores_the_unseen_test_split_as_one_process_does(validated_run, tmp_path):
    out = tmp_path / "two"
    assert main(["train", *RUN, "--epochs", "2", "--val-fraction", "0.2", "--nproc", "2", "--output", str(out)]) == 0
    result = json.loads((out / "test.json").read_text())
    assert result["images"] == 359 and result["validation_images"] == 287
    assert (out / "config.json").is_file() and not list(out.glob("test.json.*"))  # (written once, by rank 0)


def test_a_comparison_recorded_before_validation_splits_resumes_as_it_ran(tmp_path, capsys):
    """compare.json of an older convolab records --val-fraction 0.1, its default then, for every comparison: its
    --resume must train the runs not yet made as the others were, on the data's own test split."""
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", "lenet5", "--data", "digits", "--train-subset", "200", "--epochs", "1",
                 "--no-progress", "--output", str(out)]) == 0
    state = json.loads((out / "compare.json").read_text())
    assert state["config"].pop("record") == 2
    state["config"]["val_fraction"] = 0.1
    state["statuses"] = {**state.get("statuses", {}), "lenet5": "not run"}
    (out / "compare.json").write_text(json.dumps(state))
    for path in (out / "runs" / "lenet5").iterdir():
        path.unlink()
    (out / "runs" / "lenet5").rmdir()
    capsys.readouterr()
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    assert "| best test acc | final test acc |" in capsys.readouterr().out
    assert not (out / "runs" / "lenet5" / "test.json").exists()


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_a_subset_of_a_folder_of_one_split_holds_its_test_images_out_once(tmp_path, loader):
    """A folder of one split holds --val-fraction of its images out as its test split; with --train-subset, the
    subset's data were taken for data with a test split of their own, and a second share was held out of the
    training subset as validation images (21 train / 9 validation / 18 test, where 30 / 18 was asked)."""
    folder = write_png_folder(tmp_path / "flat", per_class=20, size=16, split_dirs=False)
    out = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--val-fraction", "0.3", "--train-subset", "30",
                 "--loader", loader, "--workers", "0", "--epochs", "1", "--batch-size", "8", "--no-progress",
                 "--output", str(out)]) == 0
    assert not (out / "test.json").exists()
    assert json.loads((out / "config.json").read_text())["resolved"]["validation"] is None
    assert len(Trainer.resume(out).train_labels) == 30


def test_a_report_of_a_validated_run_and_an_ordinary_one_names_neither_split_for_both(validated_run, digits_run,
                                                                                       tmp_path, capsys):
    out, _ = validated_run
    assert main(["report", str(out), str(digits_run), "--output", str(tmp_path / "report")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "| best acc | final acc |" in header and header.endswith("| test acc (best.pt) |"), header
    assert "val_fraction differ" in (tmp_path / "report" / "results.md").read_text()


@pytest.mark.parametrize("source", ["cache", "stream", "tar"])
def test_a_folder_with_val_and_test_folders_scores_test_once_at_the_end(tmp_path, capsys, caplog, source):
    """train/, val/ and test/: val/ scores each epoch (best.pt, --patience), test/ is kept unseen and scored once,
    at the end, with best.pt, as `evaluate RUN` scores it (before: test/ was left out, and the user told to evaluate
    it by hand; the epoch lines called val/ "test"). --val-fraction is refused there (it made val/ the unseen test)."""
    folder = write_png_folder(tmp_path / "tvt", per_class=8, size=16)
    shutil.copytree(folder / "test", folder / "val")
    for path in sorted((folder / "test").rglob("*.png"))[:6]:
        path.unlink()  # (test/ of 18 images, val/ of 24)
    data = str(_tar(folder, tmp_path / "tvt.tar") if source == "tar" else folder)
    loader = ["--loader", "stream", "--workers", "0"] if source == "stream" else ["--loader", "cache"]
    out = tmp_path / "run"
    caplog.set_level(logging.INFO, logger="convolab")
    assert main(["train", "lenet5_modern", "--data", data, *loader, "--epochs", "2", "--batch-size", "8",
                 "--no-progress", "--output", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert "(24 train / 24 validation images, 18 test images kept unseen, 3 classes)" in printed[0], printed[0]
    assert "val/ scores each epoch and test/ (18 images) is kept unseen, scored once at the end with best.pt" \
        in caplog.text
    result = json.loads((out / "test.json").read_text())
    assert printed[-1].startswith(f"test accuracy: {result['top1']:.4f} (best.pt of epoch ") and result["images"] == 18
    assert main(["evaluate", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert (evaluated["images"], evaluated["top1"]) == (18, result["top1"])
    assert main(["train", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 0  # (the same split resumed)
    capsys.readouterr()
    assert main(["train", "lenet5_modern", "--data", data, *loader, "--val-fraction", "0.2",
                 "--output", str(tmp_path / "refused")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"convolab train: error: --val-fraction 0.2: {data} has val/ and test/ folders, whose val/ scores each epoch "
        "while test/ stays unseen until the end; leave --val-fraction out"]


def test_other_data_of_train_val_and_test_folders_are_evaluated_on_their_test_folder(digits_run, tmp_path, capsys):
    folder = write_png_folder(tmp_path / "tvt", per_class=4, size=28, classes=("0", "1"), mode="L")
    shutil.copytree(folder / "test", folder / "val")
    (folder / "test" / "0" / "0.png").unlink()
    assert main(["evaluate", str(digits_run), "--data", str(folder), "--json", "--output", str(tmp_path / "e")]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 7  # (test/'s; val/ holds 8)


def test_features_of_train_val_and_test_folders_hold_all_three_splits(digits_run, tmp_path, capsys):
    """`features` of such a folder wrote train/ and test/ alone (of a run that kept test/ unseen) or train/ and val/
    as "test" (of other data): val_* now holds val/'s and test_* test/'s, whichever run the checkpoint is of."""
    folder = write_png_folder(tmp_path / "tvt", per_class=4, size=28, classes=("0", "1"), mode="L")
    shutil.copytree(folder / "test", folder / "val")
    (folder / "test" / "0" / "0.png").unlink()  # (test/ 7 images, val/ 8)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--output", str(run)]) == 0
    for checkpoint in (run / "best.pt", digits_run / "best.pt"):  # (its own data; another run's checkpoint)
        capsys.readouterr()
        out = tmp_path / f"{checkpoint.parent.name}.npz"
        assert main(["features", str(checkpoint), "--data", str(folder), "--out", str(out)]) == 0
        assert "8 train, 8 val and 7 test feature vectors" in capsys.readouterr().out
        with np.load(out) as arrays:
            sizes = {key: len(arrays[key]) for key in arrays if key.endswith(("_features", "_labels"))}
        assert sizes == {"train_features": 8, "train_labels": 8, "val_features": 8, "val_labels": 8,
                         "test_features": 7, "test_labels": 7}, sizes


@pytest.mark.parametrize("extra_in, said", [("val", "the validation split has"), ("test", "the test split has"),
                                            ("both", "the validation and test splits have")])
def test_a_class_the_training_folder_lacks_is_named_with_the_split_that_has_it(tmp_path, extra_in, said):
    """Of train/, val/ and test/, val/ is the validation split (before: a class only val/ had was "the test split")."""
    folder = write_png_folder(tmp_path / "tvt", per_class=2, size=8, classes=("a", "b"))
    shutil.copytree(folder / "test", folder / "val")
    for split in ("val", "test") if extra_in == "both" else (extra_in,):
        shutil.copytree(folder / split / "a", folder / split / "zebra")
    with pytest.raises(DataError, match=f"^{folder}: {said} classes the training split lacks: zebra "):
        load_data(str(folder))


def test_a_test_subset_of_a_folder_with_val_and_test_is_said_of_its_validation_images(tmp_path, caplog):
    """--test-subset takes N of val/ there, the split each epoch is scored on (test/ is scored whole): its lines
    said "test images"."""
    folder = write_png_folder(tmp_path / "tvt", per_class=2, size=8, classes=("a", "b", "c"))
    shutil.copytree(folder / "test", folder / "val")
    data = load_data(str(folder))
    caplog.set_level(logging.WARNING, logger="convolab")
    check_subset_counts(data, None, 7)
    assert [r.getMessage() for r in caplog.records] == ["`test_subset` 7 is more than the 6 validation images: all "
                                                        "of them are used"]
    with pytest.raises(ConfigError, match="`test_subset` 2 is fewer than the 3 classes of the validation images"):
        check_subset_counts(data, None, 2)


def test_a_class_all_of_whose_training_images_were_skipped_is_named_with_the_split_that_has_it(tmp_path):
    folder = write_png_folder(tmp_path / "tvt", per_class=2, size=8, classes=("a", "b", "c"))
    shutil.copytree(folder / "test", folder / "val")
    shutil.rmtree(folder / "test" / "c")
    for png in (folder / "train" / "c").glob("*.png"):
        png.write_bytes(b"junk")
    with pytest.raises(DataError, match=r"every training image of class c was unreadable and skipped "
                                        r"\(`skip_bad_images`\), while the validation split has some: .* every split$"):
        load_data(str(folder), skip_bad_images=True)


def test_a_new_best_pt_drops_the_test_json_of_the_one_it_replaces(tmp_path):
    """(before: a finished run resumed for more epochs and stopped kept the test.json of its earlier best.pt, which
    `report` then gave beside the new best.pt)"""
    trainer = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, val_fraction=0.2, progress=False,
                                  output=str(tmp_path / "run")))
    result = trainer.fit()
    assert result.unseen_test is not None and (tmp_path / "run" / "test.json").is_file()
    trainer.save("last.pt")
    assert (tmp_path / "run" / "test.json").is_file()
    trainer.save("best.pt")
    assert not (tmp_path / "run" / "test.json").exists()


def test_a_complete_run_whose_scoring_was_stopped_is_scored_by_resume(tmp_path, capsys, monkeypatch):
    """A stop signal while best.pt was scored on the unseen test split (no step to stop before) is one line naming
    how to finish (before: SIGTERM ended the process without a line, Ctrl-C said "interrupted"); and `--resume` of
    the complete run scores it (before: refused as complete, so test.json could never be written)."""
    out = tmp_path / "run"

    def stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # (the handler raises at the next instruction)
        raise AssertionError("not stopped")

    monkeypatch.setattr(final_test, "evaluate_checkpoint", stopped)
    assert main(["train", *RUN, "--epochs", "1", "--val-fraction", "0.2", "--output", str(out)]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "convolab train: stopped by SIGTERM while best.pt was scored on the unseen test split; every epoch is "
        f"saved: finish it with convolab train --resume {out}")
    assert not (out / "test.json").exists()
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == f"scoring {out}'s best.pt on the test split it kept unseen (the run is complete)"
    assert printed[-1].startswith("test accuracy: ") and (out / "test.json").is_file()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2  # (scored: complete, as any)
    assert "the run is complete" in capsys.readouterr().err


def test_compare_resume_scores_a_finished_run_whose_test_json_is_missing(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", "--data", "digits", "--train-subset", "200", "--val-fraction", "0.2",
                 "--epochs", "1", "--no-progress", "--output", str(out)]) == 0
    scored = out / "runs" / "lenet5_modern" / "test.json"
    figure = json.loads(scored.read_text())["top1"]
    scored.unlink()
    capsys.readouterr()
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    assert json.loads(scored.read_text())["top1"] == figure and f"| {figure:.4f} |" in capsys.readouterr().out


def test_resuming_with_other_images_held_out_than_the_run_had_is_refused(tmp_path):
    """A run given data in Python, split by with_validation, records no --val-fraction: resumed without the data,
    its validation images would have become training images and its test images scored each epoch, silently."""
    held = load_data("digits").with_validation(0.2)
    run = tmp_path / "py"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, progress=False, output=str(run)),
            data=held).fit()
    with pytest.raises(ConfigError, match=r"was trained with 287 validation images held out of its training split, "
                                          r"which this resume would train on; resume it with the data it was given"):
        Trainer.resume(run, epochs=2)
    assert len(Trainer.resume(run, data=held, epochs=2).train_labels) == 1151


def test_a_resume_on_data_that_changed_says_its_validation_images_are_drawn_again(tmp_path, caplog):
    folder, run = validated_photos_run(tmp_path, batch_size=8)
    shutil.copy(folder / "train" / "a" / "0.png", folder / "train" / "a" / "extra.png")
    caplog.set_level(logging.WARNING, logger="convolab")
    Trainer.resume(run, epochs=2)
    assert [r.getMessage() for r in caplog.records] == [
        f"`data` {folder} has changed since {run} was trained on it (24 training and 6 validation images then, 25 and "
        "6 now): its validation images are drawn again, and may be images the model trained on"]


def test_an_older_run_given_another_val_fraction_on_data_with_a_test_split_resumes_on_its_whole_split(tmp_path):
    """An older convolab did not use --val-fraction 0.2 on the digits (it said so), but recorded it: the run trained
    on all 1,438 training images, and resumed, it must not start holding 20% out (before: refused, "altered or
    damaged")."""
    run = tmp_path / "old"
    assert main(["train", *RUN, "--epochs", "1", "--output", str(run)]) == 0
    as_an_older_convolab_recorded(run, 0.2)
    trainer = Trainer.resume(run, epochs=2)
    assert len(trainer.train_labels) == 1438 and trainer.data.unseen_test is None
    assert trainer.fit().unseen_test is None and not (run / "test.json").exists()


def test_a_records_default_val_fraction_reads_as_an_older_convolab_and_this_one_mean_it(digits_run, validated_run):
    """The default (None) is recorded as 0.1, the old default, marked: an older convolab, which refuses None (before:
    "val_fraction must be a number, got None; the file was edited or damaged"), reads it as its own default, and
    this one as None; a value given is recorded as given."""
    default = json.loads((digits_run / "config.json").read_text())
    assert (default["val_fraction"], default["val_fraction_defaulted"], default["record"]) == (0.1, True, 2)
    assert TrainConfig.from_run(digits_run).val_fraction is None
    given = json.loads((validated_run[0] / "config.json").read_text())
    assert given["val_fraction"] == 0.2 and "val_fraction_defaulted" not in given
    assert TrainConfig.from_run(validated_run[0]).val_fraction == 0.2
    assert TrainConfig(model="lenet5", data="digits", val_fraction=0.1).to_record()["val_fraction"] == 0.1
    assert TrainConfig.from_record(TrainConfig(model="lenet5", data="digits", val_fraction=0.1).to_record()
                                   ).val_fraction == 0.1



def _tar(folder, target):
    with tarfile.open(target, "w") as tar:
        tar.add(folder, arcname=".")
    return target


def test_a_run_on_train_val_and_test_from_before_test_was_kept_resumes_and_is_evaluated_without_a_word(tmp_path,
                                                                                                        caplog):
    """Its checkpoints record train/ and val/ (24 and 24) as its two splits; now the folder gives test/ too."""
    _, run = tvt_run_as_written_before_test_was_kept(tmp_path)
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["evaluate", str(run), "--json", "--output", str(tmp_path / "e")]) == 0
    assert Trainer.resume(run, epochs=2).fit().unseen_test["images"] == 24
    assert [r.getMessage() for r in caplog.records] == []


HOOK = """
import os
if os.environ.get("HOOK_SLEEP"):
    import time
    import convolab.training.final_test as final_test
    scored = final_test.evaluate_checkpoint
    def slow(*args, **kwargs):
        print("HOOK: scoring", flush=True)
        time.sleep(float(os.environ["HOOK_SLEEP"]))
        return scored(*args, **kwargs)
    final_test.evaluate_checkpoint = slow
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_under_nproc_a_stop_while_scoring_is_said_by_the_line_that_says_how_to_finish(tmp_path, stop):
    """(before: the ranks waiting for rank 0's scoring met the signal in the process group's closing wait, and its
    copies, passed on by the launcher, ended rank 0 unsaid: `convolab train: interrupted`, 6 times in 7)"""
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "hook"), *sys.path]), HOOK_SLEEP="60")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "convolab", "train", *RUN, "--epochs", "1", "--val-fraction", "0.2",
                             "--nproc", "2", "--output", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("HOOK: scoring"):
                break
        time.sleep(1)
        os.killpg(proc.pid, stop)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + stop
    assert err.strip().splitlines()[-1] == (
        f"convolab train: stopped by {signal.Signals(stop).name} while best.pt was scored on the unseen test split; "
        f"every epoch is saved: finish it with convolab train --resume {out} --nproc 2"), err


def test_a_resume_on_images_moved_between_classes_or_with_other_steps_says_the_data_changed(tmp_path, caplog,
                                                                                            capsys):
    """(before: images moved from one class to another kept the counts, and the validation images were drawn again
    without a word; and where the data's change changed an epoch's steps, --resume blamed last.pt: "altered or
    damaged")"""
    folder, run = validated_photos_run(tmp_path, batch_size=4)
    shutil.move(folder / "train" / "a" / "0.png", folder / "train" / "b" / "moved.png")
    caplog.set_level(logging.WARNING, logger="convolab")
    Trainer.resume(run, epochs=2)
    assert [r.getMessage() for r in caplog.records] == [
        f"`data` {folder} has changed since {run} was trained on it (as many images, 24 training and 6 validation, in "
        "other classes): its validation images are drawn again, and may be images the model trained on"]
    for k in range(8):
        shutil.copy(folder / "train" / "c" / "0.png", folder / "train" / "c" / f"copy{k}.png")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"convolab train: error: --data {folder} has changed since {run} was "
                                               "trained on it (24 training and 6 validation images then, ") and \
        "; the run cannot go on with them (" in err[0] and err[0].endswith(
            "): restore the data it was trained on, or start a new run"), err


def test_a_report_of_an_older_run_whose_val_fraction_held_nothing_out_beside_a_new_one_says_no_difference(
        digits_run, tmp_path, capsys):
    """An older convolab's run given --val-fraction 0.2 on the digits held nothing out (it said so); resumed now, its
    config.json says its test split is the data's own: beside a run of today, no "Not comparable" note."""
    run = tmp_path / "old"
    assert main(["train", *RUN, "--epochs", "1", "--output", str(run)]) == 0
    as_an_older_convolab_recorded(run, 0.2)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), str(digits_run), "--output", str(tmp_path / "report")]) == 0
    assert "Not comparable" not in capsys.readouterr().out


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_a_test_folder_beside_val_whose_every_image_is_unreadable_is_one_line(tmp_path, capsys, loader):
    """(before: cached, val/ silently became the test split; streamed, `test accuracy: nan ... on the 0 test images`,
    exit 0)"""
    folder = write_png_folder(tmp_path / "tvt", per_class=6, size=16)
    shutil.copytree(folder / "test", folder / "val")
    for path in (folder / "test").rglob("*.png"):
        path.write_bytes(b"not an image")
    out = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--skip-bad-images", "--loader", loader,
                 "--workers", "0", "--epochs", "1", "--batch-size", "6", "--no-progress", "--output", str(out)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"convolab train: error: {folder}: no image of its test/ beside val/ could be read (each was "
                    "skipped by --skip-bad-images); repair or remove them, or the folder" if loader == "cache" else
                    f"convolab train: error: no image of the test split {folder} kept unseen could be read (each was "
                    f"skipped by --skip-bad-images); repair or remove them, then score it: convolab train --resume "
                    f"{out}"), line


def test_a_cache_of_an_older_convolab_is_another_file_which_this_one_never_shares(tmp_path, monkeypatch, caplog):
    """An older convolab read this one's cache of train/, val/ and test/ as train/ and test/ pooled, and trained on
    test/ (they shared one file name); version 8 of the cache is another file."""
    folder = write_png_folder(tmp_path / "tvt", per_class=4, size=16)
    shutil.copytree(folder / "test", folder / "val")
    caplog.set_level(logging.INFO, logger="convolab")
    monkeypatch.setattr(folder_module, "CACHE_VERSION", 7)
    load_data(str(folder), loader="cache")
    monkeypatch.undo()
    caplog.clear()
    data = load_data(str(folder), loader="cache")
    assert "once into the cache" in caplog.text and len(data.unseen_test) == 12  # (decoded again, into its own file)


def test_evaluate_of_a_run_from_before_test_was_kept_unseen_scores_what_it_scored(tmp_path, capsys):
    """Its epochs and closing line scored val/ (as its "test"): `evaluate RUN` gives that figure still."""
    _, run = tvt_run_as_written_before_test_was_kept(tmp_path, test_images=18)
    validation = json.loads((run / "metrics.json").read_text())[-1]["test_acc"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--output", str(tmp_path / "e")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert (evaluated["images"], evaluated["top1"]) == (24, validation)
    assert evaluated["checkpoint"]["judged_on"] == "the run's own test images"


def test_evaluate_of_split_folders_that_changed_says_so_without_a_redraw(tmp_path, caplog):
    """Split folders are fixed: an image gone from test/ is not a test split "drawn again" (before: said so)."""
    folder = write_png_folder(tmp_path / "tt", per_class=4, size=16)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(folder), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--output", str(run)]) == 0
    (folder / "test" / "a" / "0.png").unlink()
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["evaluate", str(run), "--output", str(tmp_path / "e")]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder} has changed since the run trained on it (12 training and 12 test images then, 12 and 11 now)"]


def test_a_run_from_before_test_was_kept_whose_val_folder_changed_resumes_with_the_change_said(tmp_path, caplog):
    """(before: refused with the line for data split in Python, "resume it with the data it was given")"""
    folder, run = tvt_run_as_written_before_test_was_kept(tmp_path)
    (folder / "val" / "a" / "0.png").unlink()
    caplog.set_level(logging.WARNING, logger="convolab")
    Trainer.resume(run, epochs=2)
    assert [r.getMessage() for r in caplog.records] == [
        f"`data` {folder} has changed since {run} was trained on it (24 training and 24 test images then, 24 and 23 "
        "now)"]


def test_with_validation_twice_or_on_a_folder_keeping_test_unseen_is_one_clear_error(tmp_path):
    """(before: a second call made the first's validation images the "unseen test", and a train/, val/, test/ folder's
    val/ became it, its test/ dropped without a word)"""
    with pytest.raises(ConfigError, match=r"^digits keeps a test split unseen already \(a folder's test/ beside the "
                                          r"val/ that scores each epoch, or with_validation's\); call it on data "
                                          r"whose test split scores them$"):
        load_data("digits").with_validation(0.2).with_validation(0.2)
    folder = write_png_folder(tmp_path / "tvt", per_class=4, size=16)
    shutil.copytree(folder / "test", folder / "val")
    with pytest.raises(ConfigError, match=r"^tvt keeps a test split unseen already"):
        load_data(str(folder)).with_validation(0.2)
