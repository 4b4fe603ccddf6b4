"""What a comparison's report may pool and set side by side: runs of one model trained with other options are
settings of their own, not seeds; speed figures of other threads or devices, validation figures of other training
subsets and headers of a comparison stopped before some runs began say so."""
from __future__ import annotations

import contextlib
import io
import json
import logging

from convolab.cli import main
from convolab.compare.report import differing_note, seeds_markdown_table, summary_table
from convolab.compare.results import ModelResult
from convolab.compare.seeds import scored_word, summarize_seeds

QUICK = ["--data", "digits", "--batch-size", "128", "--epochs", "1", "--no-progress", "--threads", "1",
         "--model-option", "img_size=12"]


def run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(list(argv))


def test_runs_of_one_model_at_other_learning_rates_are_two_settings_not_two_seeds(tmp_path, caplog):
    """(before: seed-0 at lr 0.002 and seed-1 at lr 0.01 were one model's two seeds, their spread taken for
    seed-to-seed noise and Welch-tested against the other model as "not different")"""
    mix = tmp_path / "mix" / "lenet5_modern"
    assert run_cli("train", "lenet5_modern", *QUICK, "--seed", "0", "--output", str(mix / "seed-0")) == 0
    assert run_cli("train", "lenet5_modern", *QUICK, "--seed", "1", "--lr", "0.01", "--output",
                   str(mix / "seed-1")) == 0
    for seed in (0, 1):
        assert run_cli("train", "lenet5", *QUICK, "--seed", str(seed), "--output",
                       str(tmp_path / "other" / "lenet5" / f"seed-{seed}")) == 0
    with caplog.at_level(logging.WARNING, logger="convolab"):
        assert run_cli("report", str(mix), str(tmp_path / "other" / "lenet5"), "--output", str(tmp_path / "rep")) == 0
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [(r["model"], r["n_seeds"]) for r in results["models"]] == [
        ("lenet5_modern (lr=0.002)", 1), ("lenet5_modern (lr=0.01)", 1), ("lenet5", 2)]
    assert [p["models"] for p in results["significance"]] == [
        ["lenet5_modern (lr=0.002)", "lenet5_modern (lr=0.01)"], ["lenet5_modern (lr=0.002)", "lenet5"],
        ["lenet5_modern (lr=0.01)", "lenet5"]]
    assert all(p["t"] is None for p in results["significance"][:2])  # (one run a setting: no test)
    assert "the runs of lenet5_modern were trained with different --lr: each setting is a model of its own in " \
           "the report, not seeds of one" in caplog.text


def _run(model: str = "a", **fields) -> ModelResult:
    return ModelResult(model=model, run_dir=model, device="cpu", images_per_second=100.0, wall_seconds=1.0,
                       history=[{"epoch": 1}], **fields)


def test_the_speed_of_runs_of_other_threads_or_devices_is_said_not_comparable():
    """(before: img/s of 1 thread beside img/s of 2 without a word in results.md)"""
    said = "Not comparable in speed: the runs trained with different threads 1, 2, so their train img/s and train " \
           "time do not measure the same thing."
    assert said in differing_note([_run("a", threads=1), _run("b", threads=2)])
    assert said in summary_table([_run("a", threads=1), _run("b", threads=2)])
    assert "devices cpu, cuda:0" in differing_note([_run("a", threads=2),
                                                    ModelResult("b", "b", device="cuda:0", images_per_second=9.0)])
    assert differing_note([_run("a", threads=2), _run("b", threads=2)]) == ""
    # (a run that never trained has no speed to compare)
    assert differing_note([_run("a", threads=2), ModelResult("b", "b", device="cpu", threads=1)]) == ""


def test_validation_figures_of_other_training_subsets_are_said_not_comparable():
    """Validation images are held out of the training subset: another subset validates on other images."""
    held = [_run("a", validated=True, options={"train_subset": 1000, "val_fraction": 0.1}),
            _run("b", validated=True, options={"train_subset": 2000, "val_fraction": 0.1})]
    assert "Not comparable: the runs were scored on different test images or otherwise (train_subset differ)" \
        in differing_note(held)
    plain = [_run("a", options={"train_subset": 1000}), _run("b", options={"train_subset": 2000})]
    assert differing_note(plain) == "Options that differ between runs: train_subset (see results.json).\n"


def test_runs_not_begun_leave_the_headers_naming_the_validation_split():
    """(before: a comparison stopped before its last runs began wrote "best acc" for the runs that validated)"""
    done = _run("a", validated=True, unseen_test_acc=0.9)
    assert scored_word([done, ModelResult("b", "b", status="not run")]) == "val"
    assert "best val acc" in summary_table([done, ModelResult("b", "b", status="not run")])


def test_the_seeds_table_gives_train_images_a_second_the_lr_of_failed_seeds_and_each_models_seeds():
    runs = [_run("a", options={"seed": 0}, threads=1), _run("a", options={"seed": 1}, threads=1),
            _run("b", options={"seed": 1}, threads=1), _run("b", options={"seed": 2}, threads=1),
            ModelResult("c", "c0", status="failed: the loss is nan", options={"seed": 0, "lr": 30.0}),
            ModelResult("c", "c1", status="failed: the loss is nan", options={"seed": 1, "lr": 30.0})]
    summaries = summarize_seeds(runs)
    table = seeds_markdown_table(summaries)
    header = table.splitlines()[0]
    assert "| train img/s | train time (s) |" in header
    assert table.splitlines()[2].split(" | ")[6] == "100 ± 0"  # (a's two runs, 100 img/s each)
    assert "| c | - | - | 30 | 0 of 2 |" in table  # (before: its lr "-", though every run was given 30)
    assert "(seeds: a 0, 1; b 1, 2; c -)" in summary_table(runs)
    assert "(seeds 0, 1)." in summary_table(runs[:2])
