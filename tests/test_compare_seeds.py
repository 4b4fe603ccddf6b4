"""`convolab compare --seeds`: each model once per seed, its mean and spread, and a test of each pair."""
from __future__ import annotations

import contextlib
import html
import io
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from convolab.cli import main
from convolab.compare import verdict_line, welch_test
from convolab.training import Trainer
from convolab.training.metrics import read_metrics

QUICK = ["--data", "digits", "--batch-size", "128", "--epochs", "1", "--no-progress", "--model-option", "img_size=12"]
MODELS = ("lenet5_modern", "lenet5")
# results.json's figure -> how it is read from the last row of a run's metrics.csv (best: the most of any row)
FIGURES = {"best_acc": lambda m: max(r["test_acc"] for r in m), "final_acc": lambda m: m[-1]["test_acc"],
           "final_train_loss": lambda m: m[-1]["train_loss"], "final_train_acc": lambda m: m[-1]["train_acc"],
           "final_test_loss": lambda m: m[-1]["test_loss"]}


def run_cli(*argv: str) -> tuple[int, str]:
    """The exit code and what the command printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("seeds") / "cmp"
    code, printed = run_cli("compare", *MODELS, *QUICK, "--seeds", "2", "--seed", "5", "--output", str(out))
    return out, code, printed


def results_of(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_each_model_trains_once_per_seed_in_its_own_folder(two_seeds):
    out, code, _ = two_seeds
    assert code == 0
    for model in MODELS:
        assert sorted(p.name for p in (out / "runs" / model).iterdir()) == ["seed-5", "seed-6"]
        for seed in (5, 6):
            config = json.loads((out / "runs" / model / f"seed-{seed}" / "config.json").read_text())
            assert config["seed"] == seed
    compare = json.loads((out / "compare.json").read_text())
    assert compare["seeds"] == [5, 6]
    assert set(compare["statuses"]) == {f"{m}/seed-{s}" for m in MODELS for s in (5, 6)}


def test_the_report_gives_the_mean_and_sample_std_of_the_run_folders_metrics(two_seeds):
    out, _, printed = two_seeds
    report = results_of(out)
    assert report["format"] == "convolab-compare-seeds-report-1" and report["differing_options"] == ["seed"]
    assert "sample standard deviation (n-1)" in report["statistics"]
    rows = {row["model"]: row for row in report["models"]}
    assert list(rows) == list(MODELS)
    md = (out / "results.md").read_text()
    for model in MODELS:
        metrics = [read_metrics(out / "runs" / model / f"seed-{seed}") for seed in (5, 6)]
        row = rows[model]
        assert row["seeds"] == [5, 6] and row["n_seeds"] == 2 and row["status"] == "ok"
        line = next(x for x in md.splitlines() if x.startswith(f"| {model} |"))
        for figure, read in FIGURES.items():
            values = [read(m) for m in metrics]
            mean, std = np.mean(values), np.std(values, ddof=1)
            assert row[f"{figure}_mean"] == pytest.approx(mean, abs=1e-12), figure
            assert row[f"{figure}_std"] == pytest.approx(std, abs=1e-12), figure
            assert f"| {mean:.4f} ± {std:.4f} |" in line, (figure, line)
        assert f"| {model} |" in printed  # the CLI prints the same table
    assert "mean ± sample standard deviation (n-1)" in md and "(n-1)" in printed
    assert len(report["runs"]) == 4 and report["runs"][0]["run_dir"].endswith("seed-5")


def test_the_verdict_of_each_pair_is_in_results_md_report_html_and_at_the_end_of_the_output(two_seeds):
    out, _, printed = two_seeds
    pair = results_of(out)["significance"]
    assert len(pair) == 1 and pair[0]["models"] == list(MODELS)
    finals = {m: [read_metrics(out / "runs" / m / f"seed-{s}")[-1]["test_acc"] for s in (5, 6)] for m in MODELS}
    expected = verdict_line(MODELS[0], finals[MODELS[0]], MODELS[1], finals[MODELS[1]])
    assert pair[0]["line"] == expected and expected.startswith("lenet5_modern vs lenet5: final test acc ")
    assert printed.splitlines()[-1] == expected
    assert f"- {expected}" in (out / "results.md").read_text()
    page = (out / "report.html").read_text()
    assert f"<li><code>{html.escape(expected)}</code></li>" in page and "shaded: min..max over the seeds" in page


def test_identical_samples_are_not_different():
    assert welch_test([0.9, 0.91, 0.905], [0.9, 0.91, 0.905]) == (0.0, 1.0, False)
    assert welch_test([0.9, 0.9], [0.9, 0.9]).different is False  # no spread at all: scipy alone says nan
    line = verdict_line("a", [0.9, 0.91, 0.905], "b", [0.9, 0.91, 0.905])
    assert line == "a vs b: final test acc 0.9050 +- 0.0050 vs 0.9050 +- 0.0050, Welch t=0.00, p=1.000: " \
                   "not different at 5%"


def test_clearly_separated_samples_are_different():
    test = welch_test([0.9, 0.91, 0.905], [0.5, 0.52, 0.51])
    assert test.different and test.t > 0 and test.p < 0.001
    line = verdict_line("resnet20", [0.9, 0.91, 0.905], "plain20", [0.5, 0.52, 0.51])
    assert line.startswith("resnet20 vs plain20: final test acc 0.9050 +- 0.0050 vs 0.5100 +- 0.0100, Welch t=")
    assert line.endswith(": different at 5%")


def test_overlapping_samples_are_not_different_and_one_seed_is_no_test():
    assert not welch_test([0.85, 0.86, 0.84], [0.851, 0.845, 0.858]).different
    assert welch_test([0.9], [0.5, 0.52]) is None
    assert verdict_line("a", [0.9], "b", [0.5, 0.52]) == "a vs b: final test acc 0.9000 vs 0.5100 +- 0.0141: " \
                                                         "one seed: no test"


def test_resume_takes_the_seeds_from_compare_json_not_the_command_line(two_seeds, capsys):
    out, _, _ = two_seeds
    assert main(["compare", "--resume", str(out), "--seeds", "3"]) == 2
    err = capsys.readouterr().err
    assert "--resume takes no MODEL or --seeds" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("seeds", [None, "1", "7,"])
def test_one_seed_keeps_the_layout_and_report_of_a_comparison_without_seeds(tmp_path, seeds):
    out = tmp_path / "cmp"
    code, printed = run_cli("compare", *MODELS, *QUICK, *(["--seeds", seeds] if seeds else []), "--output", str(out))
    assert code == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(MODELS)
    assert (out / "runs" / "lenet5" / "config.json").is_file()  # runs/MODEL, no seed-S folder
    compare = json.loads((out / "compare.json").read_text())
    assert "seeds" not in compare and set(compare["statuses"]) == set(MODELS)
    assert compare["config"]["seed"] == (7 if seeds == "7," else 0)
    report = results_of(out)
    assert report["format"] == "convolab-compare-report-1" and "significance" not in report
    assert [row["model"] for row in report["models"]] == list(MODELS) and "final_acc" in report["models"][0]
    assert (out / "results.md").read_text().startswith("| model | parameters | MACs | lr | train img/s |")
    assert "vs" not in printed and printed.splitlines()[-1].startswith("report: ")


def test_resume_of_several_seeds_keeps_finished_runs_and_resumes_the_interrupted_one(tmp_path, monkeypatch,
                                                                                      capsys, caplog):
    out = tmp_path / "cmp"
    original_step = Trainer.train_step

    def step_then_signal(self, *args, **kwargs):  # a SIGTERM in the middle of lenet5's second seed
        result = original_step(self, *args, **kwargs)
        if self.config.model == "lenet5" and self.config.seed == 1 and self.step == 4:
            self._stop_signal = signal.SIGTERM
        return result

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    code, _ = run_cli("compare", *MODELS, *QUICK, "--seeds", "0,1", "--output", str(out))
    assert code == 143 and f"convolab compare --resume {out}" in capsys.readouterr().err  # (128 + SIGTERM)
    monkeypatch.undo()
    statuses = json.loads((out / "compare.json").read_text())["statuses"]
    assert statuses == {"lenet5_modern/seed-0": "ok", "lenet5/seed-0": "ok", "lenet5_modern/seed-1": "ok",
                        "lenet5/seed-1": "interrupted"}
    assert results_of(out)["models"][1]["n_seeds"] == 1  # the report of what finished
    kept = out / "runs" / "lenet5" / "seed-0" / "last.pt"
    kept_stamp = kept.stat().st_mtime_ns

    caplog.set_level("INFO", logger="convolab")
    code, printed = run_cli("compare", "--resume", str(out))
    assert code == 0 and kept.stat().st_mtime_ns == kept_stamp
    assert "lenet5/seed-0: finished in" in caplog.text and "lenet5/seed-1: resuming in" in caplog.text
    rows = {row["model"]: row for row in results_of(out)["models"]}
    assert all(row["n_seeds"] == 2 and row["seeds"] == [0, 1] for row in rows.values())
    assert read_metrics(out / "runs" / "lenet5" / "seed-1")[-1]["step"] == 11  # the resumed epoch completed
    assert printed.splitlines()[-1].startswith("lenet5_modern vs lenet5: final test acc ")


@pytest.mark.parametrize("argv, words", [
    (["--seeds=-1,2"], "argument --seeds: each seed in seeds must be an integer in [0, 4294967295], got -1"),
    (["--seeds", "0,4294967296"], "argument --seeds: each seed in seeds must be an integer in [0, 4294967295], "
                                  "got 4294967296"),
    (["--seed", "4294967295", "--seeds", "2"], "seeds 2 from seed 4294967295 run up to seed 4294967296, but a seed "
                                               "must be an integer in [0, 4294967295]"),
], ids=["negative", "past-the-largest", "counted-past-the-largest"])
def test_a_seed_out_of_bounds_is_refused_naming_seeds_before_the_data_are_read(tmp_path, monkeypatch, capsys,
                                                                               argv, words):
    def no_data(*args, **kwargs):
        raise AssertionError("the data were read")

    monkeypatch.setattr("convolab.compare.runner.load_config_data", no_data)
    out = tmp_path / "cmp"
    try:
        code = main(["compare", *MODELS, *QUICK, *argv, "--output", str(out)])
    except SystemExit as exit_:  # (argparse's refusal)
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_report_labels_say_where_seeds_stopped_which_folders_differ_and_the_runs_own_threads(tmp_path):
    from convolab.compare.report import environment
    from convolab.compare.reporting import distinct_tails
    from convolab.compare.results import ModelResult
    from convolab.compare.seeds import seed_label

    def run(epochs: int, threads: int | None = None) -> ModelResult:
        return ModelResult(model="lenet5", run_dir="x", device="cpu", threads=threads,
                           history=[{"epoch": e + 1} for e in range(epochs)])

    # a seed stopped early (--patience): the mean after its last epoch is of the others
    assert seed_label("lenet5", [run(5), run(2)]) == \
        "lenet5: mean of 2 seeds (1 after epoch 2: the others stopped), min..max shaded"
    assert seed_label("lenet5", [run(3), run(3)]) == "lenet5: mean of 2 seeds, min..max shaded"
    # a comparison's runs/MODEL of two comparisons, told apart by the folders above
    assert distinct_tails(["A/runs/lenet5", "B/runs/lenet5", "B/runs/resnet20"]) == \
        ["A/runs/lenet5", "B/runs/lenet5", "B/runs/resnet20"]
    assert distinct_tails(["A/lenet5", "A/resnet20"]) == ["lenet5", "resnet20"]
    # the threads the runs trained with, not the reporting process's
    assert environment([run(1, 2), run(1, 2)])["device"].endswith(", 2 threads)")
    assert environment([run(1, 1), run(1, 2)])["device"].endswith(", 1-2 threads)")
    assert "threads" not in environment([run(1)])["device"]  # (a run of an older version records none)


# ----- `convolab report` of a comparison's folders -------------------------------------------------------
def test_report_of_runs_model_folders_of_seeds_gives_each_model_over_its_seeds(two_seeds, tmp_path):
    out, _, printed = two_seeds
    code, again = run_cli("report", *(str(out / "runs" / m) for m in MODELS), "--output", str(tmp_path / "rep"))
    assert code == 0
    mine, theirs = results_of(tmp_path / "rep"), results_of(out)
    assert mine["format"] == "convolab-compare-seeds-report-1"
    assert [(r["model"], r["seeds"], r["final_acc_mean"], r["final_acc_std"]) for r in mine["models"]] == [
        (r["model"], r["seeds"], r["final_acc_mean"], r["final_acc_std"]) for r in theirs["models"]]
    assert [r["run_dir"].rsplit("/", 2)[-2:] for r in mine["runs"]] == [[m, f"seed-{s}"] for m in MODELS
                                                                         for s in (5, 6)]
    assert [p["line"] for p in mine["significance"]] == [p["line"] for p in theirs["significance"]]
    for line in (p["line"] for p in theirs["significance"]):
        assert line in again


def test_report_of_a_comparisons_folder_takes_each_of_its_runs_in_its_models_order(two_seeds, tmp_path):
    out, _, _ = two_seeds
    assert run_cli("report", str(out), "--output", str(tmp_path / "rep"))[0] == 0
    assert [r["model"] for r in results_of(tmp_path / "rep")["models"]] == list(MODELS)
    assert len(results_of(tmp_path / "rep")["runs"]) == 4


def test_report_of_one_model_in_two_comparisons_tells_them_apart_by_folder(two_seeds, tmp_path):
    out, _, _ = two_seeds
    other = tmp_path / "again"
    shutil.copytree(out, other)
    code, _ = run_cli("report", str(out / "runs" / "lenet5"), str(other / "runs" / "lenet5"),
                      "--output", str(tmp_path / "rep"))
    assert code == 0
    rows = results_of(tmp_path / "rep")["models"]
    assert [r["model"] for r in rows] == [f"lenet5 ({out.name}/runs/lenet5)", "lenet5 (again/runs/lenet5)"]
    assert [r["n_seeds"] for r in rows] == [2, 2]
