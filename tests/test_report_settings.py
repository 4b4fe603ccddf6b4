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
    assert differing_note([ModelResult("a", "a", device="cuda", images_per_second=9.0),  # (cuda is cuda:0)
                           ModelResult("b", "b", device="cuda:0", images_per_second=9.0)]) == ""
    # (a run that never trained has no speed to compare)
    assert differing_note([_run("a", threads=2), ModelResult("b", "b", device="cpu", threads=1)]) == ""


def test_validation_figures_of_other_training_subsets_are_said_not_comparable():
    """Validation images are held out of the training subset: another subset validates on other images."""
    held = [_run("a", validated=True, options={"train_subset": 1000, "val_fraction": 0.1}),
            _run("b", validated=True, options={"train_subset": 2000, "val_fraction": 0.1})]
    assert "Not comparable on validation: the runs validated on different images (train_subset differs, and the " \
           "validation images are held out of it), so their val figures do not measure the same thing; their test " \
           "acc (best.pt) is of the same test images." in differing_note(held)
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
    assert "(seeds that finished: a 0, 1; b 1, 2; c -)" in summary_table(runs)
    assert "(seeds 0, 1)." in summary_table(runs[:2])


def test_a_comparison_resumed_with_one_seed_trained_further_reports_two_settings_and_its_html_says_why(tmp_path):
    """`train --resume` of one seed for more epochs, then `compare --resume` (before: the 1- and 2-epoch seeds were
    pooled and Welch-tested in the comparison's own report, while `report` of its folder told them apart); the
    page carries the notes results.md has (before: only the options' names)."""
    out = tmp_path / "cmp"
    assert run_cli("compare", "lenet5_modern", "lenet5", *QUICK, "--seeds", "2", "--output", str(out)) == 0
    assert run_cli("train", "--resume", str(out / "runs" / "lenet5" / "seed-1"), "--epochs", "2") == 0
    assert run_cli("compare", "--resume", str(out)) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["n_seeds"]) for r in results["models"]] == [
        ("lenet5_modern", 2), ("lenet5 (epochs=1)", 1), ("lenet5 (epochs=2)", 1)]
    assert results["notes"] == ["Options that differ between runs: epochs (see results.json)."]
    assert "<p>Options that differ between runs: epochs (see results.json).</p>" in \
        (out / "report.html").read_text()
    assert run_cli("report", str(out), "--output", str(tmp_path / "rep")) == 0
    again = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [r["model"] for r in again["models"]] == [r["model"] for r in results["models"]]


def test_a_model_whose_seeds_all_failed_gives_the_lr_they_were_given(tmp_path):
    """(before: `-`, the rows of runs that wrote nothing holding no options)"""
    out = tmp_path / "cmp"
    assert run_cli("compare", "lenet5_modern", *QUICK, "--seeds", "2", "--optimizer", "sgd", "--lr", "1e6",
                   "--output", str(out)) == 1
    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["lr"]) for r in results["models"]] == [("lenet5_modern", 1e6)]
    assert "| lenet5_modern | - | - | 1e+06 | 0 of 2 |" in (out / "results.md").read_text()


def test_a_folder_named_as_its_model_is_told_apart_by_the_folder_above_it(tmp_path):
    """(before: `lenet5 (lenet5)` beside `lenet5 (cmp)`, the comparison's)"""
    assert run_cli("train", "lenet5", *QUICK, "--output", str(tmp_path / "mine" / "lenet5")) == 0
    assert run_cli("compare", "lenet5", *QUICK, "--output", str(tmp_path / "cmp")) == 0
    assert run_cli("report", str(tmp_path / "mine" / "lenet5"), str(tmp_path / "cmp"),
                   "--output", str(tmp_path / "rep")) == 0
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [r["model"] for r in results["models"]] == ["lenet5 (mine/lenet5)", "lenet5 (cmp)"]


def test_an_lr_given_equal_to_another_runs_default_is_no_option_that_differs():
    given, default = (ModelResult("a", "a", lr=0.1, options={"lr": 0.1, "epochs": 2}),
                      ModelResult("b", "b", lr=0.1, options={"lr": None, "epochs": 2}))
    assert differing_note([given, default]) == ""
    other = ModelResult("c", "c", lr=0.05, options={"lr": None, "epochs": 2})  # (its model's default is another lr)
    assert differing_note([given, other]) == "Options that differ between runs: lr (see results.json).\n"
    # (runs all at their models' own defaults name no lr, whatever those are)
    assert differing_note([default, other]) == ""
