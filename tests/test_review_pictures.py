"""The pictures convolab draws: the confusion matrix (its size, names, colour bar, glyphs), the curves (legend,
titles, single points, non-numbers, whole epochs, step windows) and evaluate's files as one set."""
from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest
import torch
from PIL import Image

from convolab.compare import report as compare_report
from convolab.compare.results import ModelResult
from convolab.compare.seeds import summarize_seeds
from convolab.reproduce import get_experiment, plot_experiment
from convolab.reproduce.experiments import Outcome
from convolab.training import inference, metrics


@pytest.fixture
def figures(monkeypatch):
    """The figures saved while the test runs; with `.render = False` nothing is drawn (a stand-in file is
    written: the figure object is what such a test checks, and drawing a large one is slow)."""
    saved: list = []
    original = matplotlib.figure.Figure.savefig

    def savefig(fig, target, *args, **kwargs):
        saved.append(fig)
        if getattr(savefig, "render", True):
            return original(fig, target, *args, **kwargs)
        Path(target).write_bytes(b"")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    savefig.saved = saved
    return savefig


def visible_ticks(ax, axis="x") -> list[str]:
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
    labels = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [label.get_text() for t, label in zip(ticks, labels) if low <= t <= high]


def confusion(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4, (n, n))


# ----- the confusion matrix --------------------------------------------------------------------------------
def test_confusion_png_is_capped_whatever_the_class_count(tmp_path):
    path = tmp_path / "confusion.png"
    inference.plot_confusion(confusion(60), [f"class{k:02d}" for k in range(60)], path, "top-1 0.5")
    width, height = Image.open(path).size
    assert width <= 1700 and height <= 1700  # was 0.45 * 60 + 2 inches at 100 dpi: 2900 pixels


def test_confusion_of_many_classes_names_every_kth_and_has_a_colour_bar(tmp_path, figures):
    figures.render = False
    names = [f"k{k:03d}" for k in range(300)]
    inference.plot_confusion(confusion(300), names, tmp_path / "c.png", "top-1 0.1")
    fig = figures.saved[-1]
    assert max(fig.get_size_inches()) * 100 <= 2400
    matrix = fig.axes[0]
    shown = visible_ticks(matrix, "x")
    assert shown and shown == visible_ticks(matrix, "y")
    assert shown == names[:: 300 // len(shown)][: len(shown)]  # names, every k-th (not 0, 50, 100, ...)
    assert "all in confusion.csv" in matrix.get_xlabel()
    assert min(t.get_fontsize() for t in matrix.get_xticklabels()) >= 6
    assert matrix.get_images()[0].get_interpolation() == "nearest"
    assert len(fig.axes) == 2 and "row-normalised" in fig.axes[1].get_ylabel()  # the colour bar says what
    assert not matrix.texts  # no counts in cells too small for them


def test_confusion_of_40_classes_names_all_and_says_numbers_are_counts(tmp_path, figures):
    figures.render = False
    names = [f"k{k:02d}" for k in range(40)]
    inference.plot_confusion(confusion(40), names, tmp_path / "c.png", "top-1 0.1")
    fig = figures.saved[-1]
    matrix = fig.axes[0]
    assert visible_ticks(matrix, "x") == names and visible_ticks(matrix, "y") == names
    assert len(fig.axes) == 2


def test_confusion_counts_in_cells_of_a_small_matrix(tmp_path, figures):
    figures.render = False
    matrix = np.array([[3, 1], [0, 2]])
    inference.plot_confusion(matrix, ["a", "b"], tmp_path / "c.png", "top-1 0.8")
    ax = figures.saved[-1].axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "3"]
    assert "images" in ax.get_title() and len(figures.saved[-1].axes) == 2


def test_long_class_names_are_shortened_and_stay_distinct(tmp_path, figures):
    figures.render = False
    names = [f"a_rather_long_class_name_number_{k}_{'x' * k}" for k in range(10)]
    inference.plot_confusion(confusion(10), names, tmp_path / "c.png")
    fig = figures.saved[-1]
    shown = visible_ticks(fig.axes[0], "y")
    assert len(set(shown)) == 10 and max(map(len, shown)) <= 30
    assert all("\u2026" in s for s in shown)
    assert fig.get_size_inches()[0] <= 10  # the figure is not sized as if for 40 characters of names


def test_names_the_font_cannot_draw_stay_distinct_without_glyph_warnings(tmp_path, figures):
    names = ["caf\u00e9", "plain", "\u4e2d\u6587\u5b57", "\u65e5\u672c\u8a9e"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph ... missing from font(s)" warning fails the test
        inference.plot_confusion(confusion(4), names, tmp_path / "c.png")
        shown = visible_ticks(figures.saved[-1].axes[0], "y")
        metrics.plot_curves(history(2), tmp_path / "curves.png", "lenet5 on \u4e2d\u6587\u5b57")  # a title too
    assert len(set(shown)) == 4


def test_evaluate_replaces_its_three_files_together(tmp_path, monkeypatch):
    logits = torch.eye(3)
    labels = torch.tensor([0, 1, 2])
    out = tmp_path / "eval"
    inference.EvaluationReport.of(logits, labels, ["a", "b", "c"]).write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupted)
    worse = inference.EvaluationReport.of(torch.eye(3)[[1, 2, 0]], labels, ["a", "b", "c"])
    with pytest.raises(KeyboardInterrupt):
        worse.write(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set whole, no temporaries


# ----- the curves ------------------------------------------------------------------------------------------
def history(epochs: int, test_loss=None) -> list[dict[str, float]]:
    rows = []
    for e in range(1, epochs + 1):
        rows.append({"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 + 0.1 * e, "test_loss": 2.1 / e,
                     "test_acc": 0.25 + 0.1 * e, "wall_seconds": 1.5 * e})
    if test_loss is not None:
        rows[-1]["test_loss"] = test_loss
    return rows


def test_run_curves_mark_a_nan_loss_on_a_log_axis(tmp_path, figures):
    rows = history(4)
    rows[0]["train_loss"] = 2.48e15
    rows[-1]["test_loss"] = math.nan
    metrics.plot_curves(rows, tmp_path / "curves.png", "lenet5 on mnist")
    ax_loss = figures.saved[-1].axes[0]
    assert ax_loss.get_yscale() == "log"
    assert "nan" in [t.get_text() for t in ax_loss.texts]


def test_run_curves_of_one_epoch_tick_whole_epochs(tmp_path, figures):
    metrics.plot_curves(history(1), tmp_path / "curves.png", "lenet5 on mnist")
    for ax in figures.saved[-1].axes:
        assert visible_ticks(ax) == ["1"]
    metrics.plot_curves(history(3), tmp_path / "curves.png", "lenet5 on mnist")
    assert visible_ticks(figures.saved[-1].axes[0]) == ["1", "2", "3"]


def test_run_title_is_the_data_s_short_name_and_wraps(tmp_path, figures):
    data = "/tmp/" + "a_very_long_folder_name_" * 4 + "/another_quite_long_subfolder_name_holding_the_images_" * 2
    metrics.plot_curves(history(2), tmp_path / "curves.png", "lenet5_modern", data=data)
    title = figures.saved[-1]._suptitle.get_text()
    assert title.startswith("lenet5_modern on another_quite_long")
    assert "a_very_long_folder" not in title and max(map(len, title.splitlines())) <= 80
    assert metrics.data_name("/data/imagenette2-160.tar.gz") == "imagenette2-160"
    assert compare_report._curves_title("/x/y/digits/", ["lenet5"], []).startswith("digits: lenet5")


def write_steps(run_dir: Path, rows: list[tuple[int, float, int]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "steps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "lr", "train_loss", "train_acc", "train_error", "images"])
        for step, error, images in rows:
            w.writerow([step, step / 31, 0.01, 1 + error, 1 - error, error, images])


def comparison(tmp_path: Path, runs: int, epochs: int, steps: list[tuple[int, float, int]]) -> list[ModelResult]:
    results = []
    for k in range(runs):
        run_dir = tmp_path / f"run{k}"
        write_steps(run_dir, steps)
        results.append(ModelResult(model=f"model{k}", run_dir=str(run_dir), history=history(epochs)))
    return results


def test_compare_legend_lies_outside_the_panels(tmp_path, figures):
    for runs in (2, 9):
        compare_report.plot_comparison(comparison(tmp_path, runs, 3, [(10, 0.5, 640)]), "mnist: models")
        fig = figures.saved[-1]
        assert all(ax.get_legend() is None for ax in fig.axes)
        assert fig.legends and len(fig.legends[0].get_texts()) == runs
        legend_top = fig.legends[0].get_window_extent().y1
        assert legend_top <= min(ax.get_window_extent().y0 for ax in fig.axes)


def test_compare_one_epoch_draws_its_single_step_point_and_whole_epochs(tmp_path, figures):
    compare_report.plot_comparison(comparison(tmp_path, 2, 1, [(4, 0.7, 256)]), "mnist: one epoch")
    axes = figures.saved[-1].axes
    for ax in axes[4:6]:  # the "by step" panels
        assert ax.get_lines() and all(line.get_marker() == "o" for line in ax.get_lines())
    for ax in axes[:2]:
        assert visible_ticks(ax) == ["1"]


def test_step_curves_leave_out_an_epoch_s_short_last_window(tmp_path, figures):
    steps = [(10, 0.5, 640), (20, 0.45, 640), (30, 0.4, 640), (31, 0.1, 64), (41, 0.38, 640)]
    compare_report.plot_comparison(comparison(tmp_path, 1, 2, steps), "mnist")
    error = figures.saved[-1].axes[4]
    assert list(error.get_lines()[0].get_ydata()) == [0.5, 0.45, 0.4, 0.38]
    assert "mean of each 10 steps" in " ".join(error.get_ylabel().split())
    assert metrics.whole_windows([{"step": 10.0, "images": 640.0}, {"step": 11.0, "images": 64.0}]) == ([0], [5.5])


def test_compare_step_curves_say_the_shorter_window_at_an_epoch_s_end(tmp_path, figures):
    """Epochs of 15 steps: every second point averages 5 steps, and the axes say so (before: "mean of each 10 steps"
    of every point, as reproduce's curves said too)."""
    results = comparison(tmp_path, 2, 2, [])
    for r in results:
        with open(Path(r.run_dir) / "steps.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "epoch", "lr", "train_loss", "train_acc", "train_error", "images"])
            for step, images in ((10, 640), (15, 320), (25, 640), (30, 320)):
                w.writerow([step, step / 15, 0.01, 1.5, 0.5, 0.5, images])
    for plot in (lambda: compare_report.plot_comparison(results, "mnist"),
                 lambda: compare_report.plot_seed_comparison(summarize_seeds(
                     [dataclasses.replace(r, model="m") for r in results]), "mnist")):
        plot()
        error, loss = figures.saved[-1].axes[4:6]
        assert " ".join(error.get_ylabel().split()) == \
            "training error (1 - accuracy, mean of each 10 steps, 5 at an epoch's end)"  # (wrapped in the picture)
        assert " ".join(loss.get_ylabel().split()) == "training loss (mean of each 10 steps, 5 at an epoch's end)"


def test_reproduce_curves_tick_whole_epochs(tmp_path, figures):
    run_dir = tmp_path / "arm"
    write_steps(run_dir, [(4, 0.7, 256)])
    plot_experiment(get_experiment("batchnorm"), Outcome({"a": [history(1)]}), {"a": [run_dir]},
                    tmp_path / "curves.png")
    steps_ax, test_ax = figures.saved[-1].axes
    assert visible_ticks(test_ax) == ["1"]
    assert steps_ax.get_lines()[0].get_marker() == "o"
