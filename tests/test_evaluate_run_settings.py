"""`convolab evaluate` and `convolab features` of a run folder read the run's test set as training scored it:
its --tta, its --data-dir and its --test-subset (the same images), unless told otherwise."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
import torch

import convolab.cli.evaluate as evaluate_cli
from convolab.cli import main
from convolab.data import load_data
from convolab.training import TrainConfig, Trainer
from convolab.training.checkpoint import load_checkpoint
from convolab.training.checkpoint_data import is_run_data, load_data_for
from convolab.training.inference import EvaluationReport, class_mapping
from convolab.training.run_data import load_config_data


def evaluate_json(capsys, *argv: str) -> tuple[dict, str]:
    assert main(["evaluate", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(next(line for line in out.splitlines() if line.startswith("{"))), out


def test_evaluate_scores_with_the_runs_tta_as_training_did_and_tta_overrides_it(tmp_path, capsys):
    run = tmp_path / "run"
    result = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, tta="flip", output=str(run),
                                 progress=False)).fit()
    figures, out = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert (figures["images"], figures["tta"], figures["tta_from"]) == (359, "flip", "the run's")
    assert out == json.dumps(figures) + "\n"  # (the object alone: `| jq .`)
    assert figures["top1"] == result.best_acc  # train's figure for best.pt, exactly
    plain, out = evaluate_json(capsys, str(run), "--tta", "none", "--output", str(tmp_path / "ev"))
    assert plain["tta"] == "none" and plain["tta_from"] == "--tta"
    assert plain["top1"] != pytest.approx(figures["top1"], abs=1e-6)  # digits mirrored are other digits


def test_evaluate_scores_a_bf16_run_in_bf16_as_training_did(tmp_path, capsys):
    # (at two threads the bf16 logits of one image of 359 tie: evaluate once ranked them by Tensor.topk, training by
    # argmax, 0.8524 against 0.8496; now both count argmax's class)
    run = tmp_path / "run"
    result = Trainer(TrainConfig(model="resnet_mnist", data="digits", epochs=1, amp="bf16", output=str(run),
                                 progress=False)).fit()
    figures, _ = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert figures["top1"] == result.best_acc  # in fp32 this run scored 0.8524 against training's 0.8496


def test_evaluate_writes_a_class_folder_named_in_bytes_that_are_not_utf8(tmp_path, capsys):
    from PIL import Image

    folder = os.fsencode(tmp_path / "photos")
    for name in (b"cat", b"s\xe9ven"):  # a Latin-1 name, as an old archive keeps it
        os.makedirs(os.path.join(folder, name))
        for i in range(6):
            Image.new("L", (8, 8), i * 40 + len(name)).save(os.fsdecode(os.path.join(folder, name, b"%d.png" % i)))
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", os.fsdecode(folder), "--val-fraction", "0.5", "--epochs", "1",
                 "--batch-size", "2", "--no-progress", "--output", str(run)]) == 0
    figures, _ = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert figures["images"] == 6
    rows = [line.split(",") for line in (tmp_path / "ev" / "per_class.csv").read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows[1:]] == [("cat", "3"), ("s\\xe9ven", "3")]
    assert (tmp_path / "ev" / "confusion.csv").read_text().splitlines()[0] == "true \\ predicted,cat,s\\xe9ven"


def test_evaluate_and_features_take_the_runs_subsets_and_other_data_whole(tmp_path, capsys):
    run = tmp_path / "run"
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, train_subset=500, test_subset=100,
                         output=str(run), progress=False)
    result = Trainer(config).fit()
    figures, out = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert figures["images"] == 100 and figures["evaluated"].endswith(" on digits")
    assert figures["top1"] == result.best_acc
    # The same 100 images training chose, in the same order.
    checkpoint = load_checkpoint(run / "best.pt")
    ours, trained = load_data_for(checkpoint, "digits").test, load_config_data(config).test
    assert torch.equal(ours.images, trained.images) and torch.equal(ours.labels, trained.labels)
    assert main(["features", str(run), "--out", str(tmp_path / "f.npz")]) == 0
    assert "500 train and 100 test feature vectors" in capsys.readouterr().out
    # Other data than the run's are used whole.
    assert len(load_data_for(checkpoint, "mnist5k").test) == len(load_data("mnist5k").test)


def test_the_runs_data_folder_is_recognised_however_it_is_spelled(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    (tmp_path / "other").mkdir()
    checkpoint = {"data": str(folder), "config": json.dumps({"data": str(folder)})}
    monkeypatch.chdir(tmp_path / "other")
    assert is_run_data(checkpoint, "../photos") and is_run_data(checkpoint, str(folder) + "/")
    assert not is_run_data(checkpoint, "../other") and not is_run_data(checkpoint, "digits")
    assert is_run_data({"data": "digits"}, "digits")


def write_fake_mnist(root, train: int = 120, test: int = 60) -> None:
    """MNIST's four idx files (uncompressed, as torchvision keeps them) of a few images whose class is readable."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 6, 4:24] = 255  # a bar whose height says the class
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def test_evaluate_reads_mnist_from_the_runs_data_dir_unless_data_dir_is_given(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVOLAB_DATA", str(tmp_path / "nowhere"))  # not the user's cache
    write_fake_mnist(tmp_path / "tv")
    run = tmp_path / "run"
    result = Trainer(TrainConfig(model="lenet5_modern", data="mnist", data_dir=str(tmp_path / "tv"), epochs=1,
                                 batch_size=32, test_subset=30, output=str(run), progress=False)).fit()
    figures, _ = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert figures["images"] == 30 and figures["top1"] == result.best_acc
    # MNIST's classes are named as mnist5k's and digits' ("0", not torchvision's "0 - zero"): each scores the other
    assert load_checkpoint(run / "best.pt")["classes"] == [str(d) for d in range(10)]
    assert evaluate_json(capsys, str(run), "--data", "mnist5k", "--output", str(tmp_path / "ev"))[0]["images"] == 1000
    assert class_mapping(["0", "9"], [f"{d} - x" if d else "0 - zero" for d in range(10)]).tolist() == [0, 9]
    # --data-dir replaces the run's.
    assert main(["evaluate", str(run), "--data-dir", str(tmp_path / "empty"), "--output", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert f"mnist not found under {tmp_path / 'empty'}" in err and "Traceback" not in err


def test_evaluate_scores_every_image_of_another_folder_and_warns_when_the_runs_folder_changed(tmp_path, capsys,
                                                                                               caplog):
    from conftest import write_png_folder

    root = write_png_folder(tmp_path / "photos", per_class=10, size=28, classes=("a", "b"), split_dirs=False)
    other = write_png_folder(tmp_path / "other", per_class=7, size=28, classes=("a", "b"), split_dirs=False)
    one = write_png_folder(tmp_path / "one", per_class=3, size=28, classes=("b",), split_dirs=False)
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data=str(root), epochs=1, batch_size=6, output=str(run),
                        progress=False)).fit()
    figures, _ = evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert figures["images"] == 2 and "has changed" not in caplog.text  # the run's own 10% of each class
    assert evaluate_json(capsys, str(run), "--data", str(other), "--output", str(tmp_path / "ev"))[0]["images"] == 14
    assert evaluate_json(capsys, str(run), "--data", str(one), "--output", str(tmp_path / "ev"))[0]["images"] == 3
    write_png_folder(root, per_class=15, size=28, classes=("a", "b"), split_dirs=False)  # five more a class
    evaluate_json(capsys, str(run), "--output", str(tmp_path / "ev"))
    assert "has changed since the run trained on it (18 training and 2 test images then, 26 and 4 now)" \
        in caplog.text


def strict_json(out: str) -> dict:
    """The JSON line of evaluate's output, read as strict JSON (NaN and Infinity are not JSON)."""
    line = next(line for line in out.splitlines() if line.startswith("{"))
    return json.loads(line, parse_constant=lambda word: pytest.fail(f"{word} is not JSON: {line}"))


def test_evaluate_json_of_a_class_without_images_is_null_not_nan(tmp_path, capsys):
    from conftest import write_png_folder

    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(run), progress=False)).fit()
    capsys.readouterr()
    one = write_png_folder(tmp_path / "threes", per_class=4, size=28, classes=("3",), split_dirs=False)
    assert main(["evaluate", str(run), "--data", str(one), "--output", str(tmp_path / "ev"), "--json"]) == 0
    out = capsys.readouterr().out
    figures = strict_json(out)
    assert figures["images"] == 4 and set(figures["per_class"]) == {"3", "(other classes)"}
    assert figures["per_class"]["(other classes)"] is None and 0 <= figures["per_class"]["3"] <= 1
    assert "nan" not in out
    assert main(["evaluate", str(run), "--data", str(one), "--output", str(tmp_path / "ev")]) == 0
    assert "(other classes)  -  (no images)" in capsys.readouterr().out
    assert "(other classes),,0" in (tmp_path / "ev" / "per_class.csv").read_text().splitlines()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="no /sys (not Linux)")
def test_evaluate_output_that_cannot_be_written_is_refused_before_the_evaluation(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(run), progress=False)).fit()
    capsys.readouterr()
    monkeypatch.setattr(evaluate_cli, "evaluate_checkpoint", lambda *a, **k: pytest.fail("the evaluation ran"))
    for output in ("/sys/ev", "/sys/kernel"):  # one to make, one that exists: root passes os.access on both
        assert main(["evaluate", str(run), "--output", output]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"convolab evaluate: error: --output {output} ") and len(err.splitlines()) == 1, err
    assert not os.path.exists("/sys/ev")
    # the check makes nothing that stays: a folder of three levels is made for the check and removed again
    assert main(["evaluate", str(run), "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "a/b/c")]) == 2
    assert not (tmp_path / "a").exists() and "Traceback" not in capsys.readouterr().err
    # a write that fails at the end (a disk gone read-only) is one line, too
    monkeypatch.undo()

    def refused(self, out):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(EvaluationReport, "write", refused)
    assert main(["evaluate", str(run), "--output", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert f"--output {tmp_path / 'ev'} cannot be written (Permission denied); choose another folder" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
