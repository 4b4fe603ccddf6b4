"""`convolab compare` and `convolab report`: real runs on the embedded digits, several models, one report."""
from __future__ import annotations

import base64
import io
import json
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import write_png_folder
from PIL import Image

from convolab import create_model
from convolab.analysis import count_macs, count_params
from convolab.cli import main
from convolab.compare import REPORT_FILES
from convolab.compare.results import OK, read_run
from convolab.compare.runner import Comparison, refuse_existing_runs
from convolab.errors import ConfigError
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.metrics import read_metrics

PNG = b"\x89PNG\r\n\x1a\n"
QUICK = ["--data", "digits", "--batch-size", "128", "--no-progress"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> tuple[Path, int]:
    """lenet5 and lenet5_modern at 12x12 for 2 epochs; resnet_mnist cannot take img_size=12 and fails."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    rc = main(["compare", "lenet5", "resnet_mnist", "lenet5_modern", *QUICK, "--epochs", "2",
               "--model-option", "img_size=12", "--output", str(out)])
    return out, rc


def results_of(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def rows_of(folder: Path) -> dict[str, dict]:
    return {row["model"]: row for row in results_of(folder)["models"]}


def test_compare_writes_the_four_report_files_with_the_numbers_of_each_run_folder(comparison):
    out, _ = comparison
    for name in REPORT_FILES:
        assert (out / name).is_file(), name
    rows = rows_of(out)
    assert list(rows) == ["lenet5", "resnet_mnist", "lenet5_modern"]  # the order given
    for model in ("lenet5", "lenet5_modern"):
        metrics = read_metrics(out / "runs" / model)
        row = rows[model]
        assert row["status"] == "ok" and row["epochs"] == len(metrics) == 2
        accs = [m["test_acc"] for m in metrics]
        assert [h["test_acc"] for h in row["history"]] == accs
        assert [h["train_loss"] for h in row["history"]] == [m["train_loss"] for m in metrics]
        assert row["final_acc"] == accs[-1] and row["best_acc"] == max(accs)
        assert row["best_epoch"] == accs.index(max(accs)) + 1
        assert row["wall_seconds"] == metrics[-1]["wall_seconds"]
        assert row["images_per_second"] == metrics[1]["images_per_second"]  # the epochs after the first
        net = create_model(model, img_size=12)
        assert row["input_size"] == [1, 12, 12]
        assert row["params"] == count_params(net) and row["macs"] == count_macs(net, (1, 12, 12))
        line = next(x for x in (out / "results.md").read_text().splitlines() if x.startswith(f"| {model} |"))
        cells = (f"{row['params']:,}", f"{row['macs']:,}", f"{row['final_acc']:.4f}",
                 f"{row['best_acc']:.4f}", f"{row['wall_seconds']:.1f}", f"{row['images_per_second']:,.0f}")
        for cell in cells:
            assert f"| {cell} |" in line, (cell, line)
    assert rows["lenet5"]["lr"] == 0.01 and rows["lenet5_modern"]["lr"] == 2e-3  # registered defaults, shown
    report = results_of(out)
    assert report["data"] == "digits" and report["shared_options"]["epochs"] == 2
    assert report["shared_options"]["model_options"] == {"img_size": 12}
    assert report["command"].startswith("convolab compare lenet5 resnet_mnist lenet5_modern --data digits")
    assert report["versions"]["torch"] == torch.__version__ and report["versions"]["device"].startswith("cpu")


def test_curves_png_draws_every_trained_model_in_six_panels(comparison):
    out, _ = comparison
    image = Image.open(out / "curves.png").convert("RGB")
    assert image.size == (1100, 1200)  # by epoch, by training time, and training error and loss by step
    bottom = image.crop((0, 800, 1100, 1200))  # the step panels draw both models too
    assert {(31, 119, 180), (44, 160, 44)} <= {c for _, c in bottom.getcolors(maxcolors=1 << 20)}
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert (31, 119, 180) in colours and (44, 160, 44) in colours  # C0 (lenet5) and C2 (lenet5_modern)


def test_a_model_that_fails_is_marked_and_the_others_are_kept(comparison):
    out, rc = comparison
    assert rc == 1  # the report is written, but not every model finished
    rows = rows_of(out)
    failed = rows["resnet_mnist"]
    assert failed["status"].startswith("failed: ") and "img_size >= 16" in failed["status"]
    assert "\n" not in failed["status"] and failed["params"] is None and failed["history"] == []
    assert rows["lenet5"]["status"] == rows["lenet5_modern"]["status"] == "ok"
    md = (out / "results.md").read_text()
    assert md.splitlines()[0].endswith("| status |") and "| failed: " in md
    assert '<tr class="failed"><td>resnet_mnist</td>' in (out / "report.html").read_text()
    assert json.loads((out / "compare.json").read_text())["statuses"]["resnet_mnist"] == failed["status"]


def test_a_fault_that_is_not_the_users_is_one_line_and_its_traceback_goes_to_a_file(tmp_path, monkeypatch, caplog):
    def fault(self):
        raise RuntimeError("shape '[-1, 400]' is invalid for input of size 7\nmore torch detail")

    monkeypatch.setattr(Trainer, "fit", fault)
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5", *QUICK, "--epochs", "1", "--output", str(out)]) == 1
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records) and "more torch detail" not in said, said
    reason = "RuntimeError: shape '[-1, 400]' is invalid for input of size 7"
    saved = out / "failures" / "lenet5.txt"
    assert f"lenet5 failed: {reason} (the traceback is in {saved})" in said
    assert saved.read_text().startswith("Traceback") and "in fault" in saved.read_text()
    assert rows_of(out)["lenet5"]["status"] == f"failed: {reason}"


def test_compare_refuses_an_output_that_already_holds_a_comparison(comparison, capsys):
    out, _ = comparison
    assert main(["compare", "lenet5", *QUICK, "--output", str(out)]) == 2
    assert "convolab compare --resume" in capsys.readouterr().err


def test_report_from_the_run_folders_reproduces_the_comparison(comparison, tmp_path):
    out, _ = comparison
    rc = main(["report", str(out / "runs" / "lenet5"), str(out / "runs" / "lenet5_modern"),
               "--output", str(tmp_path / "again")])
    assert rc == 0
    expected = [row for row in results_of(out)["models"] if row["status"] == "ok"]
    assert results_of(tmp_path / "again")["models"] == expected
    for name in REPORT_FILES:
        assert (tmp_path / "again" / name).is_file(), name
    assert "| status |" not in (tmp_path / "again" / "results.md").read_text()  # all finished: no column


def test_report_refuses_runs_of_different_data_sets_in_one_line(comparison, tmp_path, capsys):
    out, _ = comparison
    folder = write_png_folder(tmp_path / "shapes")
    Trainer(TrainConfig(model="lenet5", data=str(folder), epochs=1, batch_size=6,
                        model_options={"img_size": 12}, output=str(tmp_path / "other"), progress=False)).fit()
    capsys.readouterr()
    rc = main(["report", str(out / "runs" / "lenet5"), str(tmp_path / "other"),
               "--output", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "different data sets" in err and "digits" in err and str(folder) in err
    assert not (tmp_path / "rep").exists()


def test_resume_keeps_finished_runs_resumes_the_interrupted_one_and_trains_the_rest(tmp_path, monkeypatch,
                                                                                     capsys, caplog):
    out = tmp_path / "cmp"
    original_step = Trainer.train_step

    def step_then_signal(self, *args, **kwargs):  # a SIGTERM while lenet5 trains, in the middle of its epoch
        result = original_step(self, *args, **kwargs)
        if self.config.model == "lenet5" and self.step == 4:
            self._stop_signal = signal.SIGTERM
        return result

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    rc = main(["compare", "lenet5_modern", "lenet5", "resnet_mnist", *QUICK, "--epochs", "1",
               "--model-option", "img_size=16", "--output", str(out)])
    assert rc == 143 and f"convolab compare --resume {out}" in capsys.readouterr().err  # (128 + SIGTERM)
    monkeypatch.undo()
    statuses = {m: r["status"] for m, r in rows_of(out).items()}
    assert statuses == {"lenet5_modern": "ok", "lenet5": "interrupted", "resnet_mnist": "not run"}
    assert json.loads((out / "compare.json").read_text())["statuses"] == statuses
    kept = out / "runs" / "lenet5_modern" / "last.pt"
    kept_stamp, kept_metrics = kept.stat().st_mtime_ns, (kept.parent / "metrics.csv").read_text()

    caplog.set_level("INFO", logger="convolab")
    assert main(["compare", "--resume", str(out)]) == 0  # no other argument: compare.json has them
    assert kept.stat().st_mtime_ns == kept_stamp and (kept.parent / "metrics.csv").read_text() == kept_metrics
    assert "lenet5_modern: finished in" in caplog.text and "lenet5: resuming in" in caplog.text
    assert "resnet_mnist: training in" in caplog.text
    rows = rows_of(out)
    assert all(r["status"] == "ok" and r["epochs"] == 1 for r in rows.values())
    assert rows["lenet5"]["history"][0]["step"] == 11  # 1437 digits // 128: the resumed epoch completed
    assert results_of(out)["resumed_by"] == [f"convolab compare --resume {out}"]


def test_budget_seconds_stops_each_model_after_the_epoch_that_reaches_it(tmp_path):
    out = tmp_path / "cmp"
    rc = main(["compare", "lenet5_modern", *QUICK, "--epochs", "3", "--budget-seconds", "0.001",
               "--model-option", "img_size=12", "--output", str(out)])
    assert rc == 0
    row = rows_of(out)["lenet5_modern"]
    assert row["status"] == "ok" and row["epochs"] == 1 and row["planned_epochs"] == 3
    assert results_of(out)["shared_options"]["budget_seconds"] == 0.001
    resumed = Trainer.resume(out / "runs" / "lenet5_modern").fit()  # a spent budget trains no more
    assert len(resumed.history) == 1 and resumed.stopped_early


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class PageParser(HTMLParser):
    """The first table's body rows and every <img> src of a page."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.body_attrs: dict[str, str] = {}
        self._tables = 0
        self._in_body_rows = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body_attrs = attrs
        elif tag == "table":
            self._tables += 1
        elif tag == "tbody" and self._tables == 1:
            self._in_body_rows = True
        elif tag == "tr" and self._in_body_rows:
            self.rows.append([])
        elif tag == "td" and self._in_body_rows:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body_rows = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_report_html_shows_the_table_and_the_images_in_headless_chromium(comparison, tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    out, _ = comparison
    # The browser records how wide it decoded each image once the page has loaded.
    probe = "<script>addEventListener('load', () => { document.body.dataset.imageWidths = " \
            "Array.from(document.images, i => i.naturalWidth).join(','); });</script></body>"
    page = tmp_path / "probe.html"
    page.write_text((out / "report.html").read_text().replace("</body>", probe))
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    parsed = PageParser()
    parsed.feed(dom)
    assert [row[0] for row in parsed.rows] == ["lenet5", "resnet_mnist", "lenet5_modern"]
    lenet5 = rows_of(out)["lenet5"]
    assert f"{lenet5['final_acc']:.4f}" in parsed.rows[0] and f"{lenet5['params']:,}" in parsed.rows[0]
    assert len(parsed.images) == 3  # the comparison and each finished run's own curves
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png.startswith(PNG) and Image.open(io.BytesIO(png)).size[0] > 0
    widths = [int(w) for w in parsed.body_attrs["data-image-widths"].split(",")]
    assert widths == [1100, 1000, 1000]  # every image decoded by the browser, at its own size


def test_the_best_figures_are_those_of_best_pt_as_monitor_chose_it_whatever_min_delta(tmp_path):
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=3, monitor="test_loss", min_delta=0.5,
                        output=str(run), progress=False)).fit()  # --min-delta counts for --patience only
    result = read_run(run)
    losses = [row["test_loss"] for row in result.history]
    best = losses.index(min(losses))
    assert (result.best_epoch, result.best_acc) == (best + 1, result.history[best]["test_acc"])
    assert load_checkpoint(run / "best.pt")["epoch"] == best + 1


# ----- what a comparison or a report must not overwrite, and what it refuses before it writes anything -------
ONE_EPOCH = [*QUICK, "--epochs", "1", "--model-option", "img_size=12"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """FOLDER/runs/lenet5_modern: a `convolab train` run of one epoch, as a comparison in FOLDER would name it."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["train", "lenet5_modern", *ONE_EPOCH, "--output", str(root / "runs" / "lenet5_modern")]) == 0
    return root


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys) -> str:
    """The one error line of a command that must exit 2."""
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and not out, err
    return err


@pytest.mark.parametrize("seeds", [[], ["--seeds", "0,1"]], ids=["one-seed", "two-seeds"])
def test_a_new_comparison_refuses_a_runs_folder_that_holds_a_run_and_leaves_it_as_it_was(trained, tmp_path,
                                                                                        capsys, seeds):
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = files_of(out)
    err = refused(["compare", "lenet5_modern", *ONE_EPOCH, *seeds, "--output", str(out)], capsys)
    assert f"{out / 'runs' / 'lenet5_modern'} already holds a run (config.json" in err
    assert "choose another --output" in err
    assert files_of(out) == before and not (out / "compare.json").exists()


def test_a_new_comparison_refuses_a_runs_folder_that_holds_other_files_and_keeps_them(tmp_path, capsys):
    # compare owns runs/MODEL: `--resume` deletes a failed run's folder, so it must hold nothing of the user's
    out = tmp_path / "out"
    (out / "runs" / "lenet5_modern").mkdir(parents=True)
    (out / "runs" / "lenet5_modern" / "notes.txt").write_text("mine")
    err = refused(["compare", "lenet5_modern", *ONE_EPOCH, "--output", str(out)], capsys)
    assert "already holds files that are not a run (notes.txt)" in err and "choose another --output" in err
    assert (out / "runs" / "lenet5_modern" / "notes.txt").read_text() == "mine" and not (out / "compare.json").exists()


def test_compare_with_seeds_refuses_a_file_in_a_models_folder(tmp_path):
    out = tmp_path / "c"
    (out / "runs" / "lenet5").mkdir(parents=True)
    (out / "runs" / "lenet5" / "seed-1").write_text("mine")
    comparison = Comparison(out, ["lenet5"], [0, 1], TrainConfig(model=""), "convolab compare")
    with pytest.raises(ConfigError, match=r"runs/lenet5 already holds files that are not a run \(seed-1\)"):
        refuse_existing_runs(comparison)
    (out / "runs" / "lenet5" / "seed-1").unlink()
    refuse_existing_runs(comparison)  # an empty runs/MODEL will do


def test_resume_trains_afresh_a_run_the_comparison_recorded_as_failed(tmp_path, monkeypatch):
    def fault(self):
        (self.run.run_dir / "stopped.json").write_text("what the failed attempt left")  # (a run's own file)
        raise RuntimeError("a fault")

    monkeypatch.setattr(Trainer, "fit", fault)
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", *ONE_EPOCH, "--output", str(out)]) == 1
    monkeypatch.undo()
    assert (out / "runs" / "lenet5_modern" / "stopped.json").is_file()
    assert main(["compare", "--resume", str(out)]) == 0
    assert not (out / "runs" / "lenet5_modern" / "stopped.json").exists()  # its folder was made afresh
    assert rows_of(out)["lenet5_modern"]["status"] == "ok"


def test_resume_trains_afresh_a_run_killed_before_its_status_was_saved(tmp_path):
    """A kill between a run's first files and compare.json's status of it: --resume trains it again in a fresh
    folder (a new Trainer refuses a folder holding a run, so the comparison clears its own)."""
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", *ONE_EPOCH, "--output", str(out)]) == 0
    run = out / "runs" / "lenet5_modern"
    for name in ("best.pt", "last.pt"):
        (run / name).unlink()  # as if killed before its first checkpoint: config.json and nothing to resume
    state = json.loads((out / "compare.json").read_text())
    state["statuses"].pop("lenet5_modern")
    (out / "compare.json").write_text(json.dumps(state))
    assert main(["compare", "--resume", str(out)]) == 0
    assert rows_of(out)["lenet5_modern"]["status"] == "ok" and (run / "last.pt").is_file()


def test_compare_and_report_refuse_an_output_inside_the_data_folder(tmp_path, capsys):
    folder = write_png_folder(tmp_path / "shapes")
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5", data=str(folder), epochs=1, batch_size=6, model_options={"img_size": 12},
                        output=str(run), progress=False)).fit()
    before = files_of(folder)
    for output in (folder, folder / "cmp"):
        err = refused(["compare", "lenet5", "--data", str(folder), "--batch-size", "6", "--no-progress",
                       "--output", str(output)], capsys)
        assert f"--output {output} lies inside the data folder {folder}" in err
        err = refused(["report", str(run), "--output", str(output)], capsys)
        assert f"--output {output} lies inside the data folder {folder}" in err
        assert files_of(folder) == before and not (folder / "cmp").exists()


def test_compare_and_report_refuse_an_output_that_holds_a_run(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "lenet5_modern", run)
    other = tmp_path / "other"
    shutil.copytree(trained / "runs" / "lenet5_modern", other)
    before = files_of(tmp_path)
    err = refused(["compare", "lenet5", *ONE_EPOCH, "--output", str(run)], capsys)
    assert f"--output {run} holds a run (config.json, last.pt, best.pt, metrics.csv)" in err
    assert "choose another --output" in err
    err = refused(["report", str(run), "--output", str(other)], capsys)
    assert f"--output {other} holds a run (config.json, last.pt, best.pt, metrics.csv), whose curves.png would " \
           "be overwritten" in err
    assert files_of(tmp_path) == before


@pytest.mark.parametrize("option, words", [
    (["--tensorboard"], "--tensorboard needs the tensorboard package: pip install tensorboard"),
    (["--accumulate", "1000"], "--accumulate is 1000 but an epoch has only 11 batches of 128"),
    (["--batch-size", "5000"], "--batch-size 5000 is larger than the 1438 training images"),
], ids=["tensorboard-missing", "accumulate-over-an-epoch", "batch-over-the-data"])
def test_options_that_fail_every_model_alike_are_refused_before_the_comparison_exists(tmp_path, monkeypatch,
                                                                                     capsys, option, words):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` raises ImportError
    out = tmp_path / "cmp"
    err = refused(["compare", "lenet5", "lenet5_modern", *ONE_EPOCH, *option, "--output", str(out)], capsys)
    assert words in err and not out.exists()


@pytest.mark.parametrize("edit", [
    lambda text: text[:200],  # cut in the middle of a row
    lambda text: "epoch,step\n",
    lambda text: "epoch,step\n1,11\n",
    lambda text: "",
    lambda text: text.replace("\n1,", "\none,", 1),
    lambda text: text.rstrip("\n") + ",7\n",  # a field more than the header
], ids=["cut-short", "header-of-two-columns", "rows-of-two-columns", "empty", "a-word", "a-field-too-many"])
def test_report_of_a_run_whose_metrics_csv_is_damaged_is_one_line(trained, tmp_path, capsys, edit):
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "lenet5_modern", run)
    (run / "metrics.csv").write_text(edit((run / "metrics.csv").read_text()))
    err = refused(["report", str(run), "--output", str(tmp_path / "rep")], capsys)
    assert f"{run / 'metrics.csv'} is damaged (" in err and "train it again" in err
    assert not (tmp_path / "rep").exists()


def strict_json(path: Path) -> Any:
    """The file's JSON, refusing the bare NaN and Infinity that Python's json writes and JSON lacks."""
    def refuse(word: str) -> None:
        raise ValueError(f"{path} holds {word}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_report_of_a_run_whose_metrics_hold_nan_writes_strict_json_with_null(trained, tmp_path):
    """A hand-edited or diverged metrics.csv with nan and inf: results.json says null where it wrote the bare NaN
    that strict JSON readers (JavaScript's JSON.parse, jq) refuse."""
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "lenet5_modern", run)
    head, row, *rest = (run / "metrics.csv").read_text().splitlines()
    names, values = head.split(","), row.split(",")
    values[names.index("test_loss")], values[names.index("train_loss")] = "nan", "inf"
    (run / "metrics.csv").write_text("\n".join([head, ",".join(values), *rest]) + "\n")
    assert main(["report", str(run), "--output", str(tmp_path / "rep")]) == 0
    model = strict_json(tmp_path / "rep" / "results.json")["models"][0]
    assert model["history"][0]["test_loss"] is None and model["history"][0]["train_loss"] is None
    assert model["history"][0]["test_acc"] == float(values[names.index("test_acc")])


def test_one_model_under_two_of_its_names_is_refused_naming_both(tmp_path, capsys):
    out = tmp_path / "cmp"
    err = refused(["compare", "lenet5", "lenet", *ONE_EPOCH, "--output", str(out)], capsys)
    assert "model lenet5 given twice (as lenet5 and lenet); give each model once" in err and not out.exists()


def test_report_of_a_run_whose_steps_csv_is_cut_short_is_one_line(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "lenet5_modern", run)
    (run / "steps.csv").write_text((run / "steps.csv").read_text()[:60])
    err = refused(["report", str(run), "--output", str(tmp_path / "rep")], capsys)
    assert f"{run / 'steps.csv'} is damaged (line 2 is not a row of numbers under its header)" in err, err


def test_a_run_stopped_between_last_pt_and_its_metrics_row_is_reported_from_last_pt(trained, tmp_path, caplog):
    """last.pt is written before the epoch's row of metrics.csv: a kill in between leaves the row out. The report
    takes the epoch from last.pt's own history (before: "damaged", and compare/reproduce --resume stuck)."""
    run = tmp_path / "run"
    shutil.copytree(trained / "runs" / "lenet5_modern", run)
    whole = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(whole.splitlines()[0] + "\n")  # the header alone; last.pt has the epoch
    assert main(["report", str(run), "--output", str(tmp_path / "rep")]) == 0
    assert "lacks the last 1 epoch(s) that last.pt finished" in caplog.text
    row = read_run(run)
    assert row.epochs == 1 and row.status == OK
    assert row.best_acc == float(whole.splitlines()[1].split(",")[whole.splitlines()[0].split(",").index("test_acc")])


def test_resume_keeps_the_recorded_progress_setting_and_a_safetensors_copy_is_no_run(trained, tmp_path):
    """`compare --resume DIR` without --progress keeps what the comparison was started with (before: always
    the bar); a folder holding a safetensors export's config.json is not a run that --output would overwrite."""
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", *ONE_EPOCH, "--output", str(out)]) == 0
    assert main(["compare", "--resume", str(out)]) == 0
    assert json.loads((out / "compare.json").read_text())["config"]["progress"] is False
    assert main(["export", str(trained / "runs" / "lenet5_modern"), "--format", "safetensors", "--out",
                 str(tmp_path / "st")]) == 0
    assert main(["report", str(trained / "runs" / "lenet5_modern"), "--output", str(tmp_path / "st")]) == 0
