"""compare's picture of curves, curves.png: every model's training loss and test (or validation) accuracy against
epoch and training time, and its training error and loss by step; with several seeds per model, the mean over them."""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

from ..training import metrics as plots  # (what every picture of curves draws alike)
from .results import ModelResult
from .seeds import SeedSummary, epoch_curve, scored_word, seed_label

BAND = "shaded: min..max over the seeds"


def _label(r: ModelResult) -> str:
    return r.model if r.ok else f"{r.model} ({r.status.split(':')[0]})"


LINE_STYLES = ("-", "--", "-.")  # a failed run's line is dotted
MARKERS = ("o", "s", "^", "D", "v")


def line_style(i: int, count: int) -> dict[str, Any]:
    """The colour, marker and line of the i-th of `count` curves, no two alike: matplotlib's ten colours up to ten,
    its tab20 up to twenty, then each line and marker in turn over those."""
    if count <= 10:
        return {"color": f"C{i}", "marker": "o", "linestyle": "-"}
    import matplotlib  # (what the colour map is read from; pyplot is not imported)

    colors = matplotlib.colormaps["tab20"].colors
    turn = i // len(colors)
    return {"color": colors[i % len(colors)], "marker": MARKERS[turn % len(MARKERS)],
            "linestyle": LINE_STYLES[turn % len(LINE_STYLES)]}


def plot_comparison(results: list[ModelResult], title: str = "") -> bytes:
    """Training loss and test accuracy of every model against epoch (top) and training time (middle), and
    training error and loss by step (bottom, from each run's steps.csv), as PNG."""
    def draw(axes: Any) -> list[Any]:
        named = []
        for i, r in enumerate(results):
            if not r.history:
                continue
            look = line_style(i, len(results))
            color, linestyle = look["color"], look["linestyle"] if r.ok else ":"
            for row, x_key in enumerate(("epoch", "wall_seconds")):
                x = [h[x_key] for h in r.history]
                style = dict(color=color, marker=look["marker"], markersize=3, label=_label(r), linestyle=linestyle,
                             markevery=plots.marks(len(x)))
                for column, key in enumerate(("train_loss", "test_acc")):
                    line, = axes[row, column].plot(x, [h[key] for h in r.history], **style)
                    plots.mark_nonfinite(axes[row, column], x, [h[key] for h in r.history], color)
            named.append(line)  # (the legend's: its four lines look alike)
            for column, key in enumerate(("train_error", "train_loss")):
                x, values, _, _ = plots.step_points([r.run_dir], key)  # (one point: a marker, a line is none)
                axes[2, column].plot(x, values, color=color, linestyle=linestyle, marker="o" if len(x) == 1 else None)
        return named

    return _six_panels(draw, title, scored_name(results), [r.run_dir for r in results if r.history])


def plot_seed_comparison(summaries: list[SeedSummary], title: str = "") -> bytes:
    """plot_comparison's six panels with each model's mean over its seeds, shaded from the lowest to the
    highest seed (at each epoch, over the seeds that reached it)."""
    def draw(axes: Any) -> list[Any]:
        named = []
        for i, s in enumerate(summaries):
            runs = s.finished
            if not runs:
                continue
            look = line_style(i, len(summaries))
            color = look["color"]
            label = seed_label(s.model, runs)
            epochs = [h["epoch"] for h in max(runs, key=lambda r: len(r.history)).history]
            curves = [epoch_curve(runs, "train_loss"), epoch_curve(runs, "test_acc")]
            for row, x in enumerate((epochs, epoch_curve(runs, "wall_seconds").mean)):
                for column, values in enumerate(curves):
                    line, = axes[row, column].plot(x, values.mean, markersize=3, label=label,
                                                   markevery=plots.marks(len(x)), **look)
                    axes[row, column].fill_between(x, values.low, values.high, color=color, alpha=0.2, linewidth=0)
            named.append(line)  # (the legend's)
            for column, key in enumerate(("train_error", "train_loss")):
                steps, mean, low, high = plots.step_points([r.run_dir for r in runs], key)
                axes[2, column].plot(steps, mean, color=color, linestyle=look["linestyle"],
                                     marker="o" if len(steps) == 1 else None)
                axes[2, column].fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        return named

    return _six_panels(draw, f"{title}\nlines: mean over the seeds; {BAND}",
                       scored_name([r for s in summaries for r in s.runs]), [r.run_dir for s in summaries
                                                                             for r in s.finished])


def scored_name(results: list[ModelResult]) -> str:
    """What the accuracy panels show, in words: "validation" (every run validated on held-out images), "test"
    (none did), or "validation or test" (some did: a `report` of runs made apart)."""
    return {"val": "validation", "test": "test"}.get(scored_word(results), "validation or test")


def _six_panels(draw: Callable[[Any], list[Any]], title: str, scored: str = "test",
                run_dirs: list[str] | None = None) -> bytes:
    """Training loss and test accuracy against epoch and training time, and training error and loss by
    step (He et al. plot training error by iteration); `draw(axes)` adds the lines and returns one per run
    to name in the legend (matplotlib's own gathering left out a name starting with `_`)."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    fig = Figure(figsize=(11, 12))
    axes = fig.subplots(3, 2)
    for column in range(2):  # epoch and time rows share the scale of each measure
        axes[1, column].sharey(axes[0, column])
    handles = draw(axes)
    drawn, labels = bool(handles), plots.drawable([line.get_label() for line in handles])
    for row, xlabel in enumerate(("epoch", "training wall time (s, evaluation excluded)")):
        axes[row, 0].set(xlabel=xlabel, ylabel="training loss", yscale="log")
        axes[row, 1].set(xlabel=xlabel, ylabel=f"{scored} accuracy")  # (validation: --val-fraction's held-out images)
    windows = plots.steps_label(run_dirs or [])  # (what each point averages, of the windows drawn)
    axes[2, 0].set(xlabel="step", ylabel=plots.axis_label(f"training error (1 - accuracy, {windows})"))
    axes[2, 1].set(xlabel="step", ylabel=plots.axis_label(f"training loss ({windows})"), yscale="log")
    for ax in axes[0]:
        plots.epoch_axis(ax, int(max((max(line.get_xdata(), default=1) for line in ax.get_lines()), default=1)))
    axes[0, 0].set_title("training loss")
    axes[0, 1].set_title(f"{scored} accuracy")
    axes[2, 0].set_title("training error by step")
    axes[2, 1].set_title("training loss by step")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        plots.plain_log_ticks(ax)
    # The legend below the panels: inside one it hid the lines it lay on (a model stuck at 0.10, or 9 runs'); the
    # figure grows by its height, in more columns for more runs (else 120 runs' 60 rows lie on the panels)
    columns = 2 if len(labels) <= 16 else 3 if len(labels) <= 45 else 4
    rows = -(-len(labels) // columns) if drawn else 0
    fig.set_size_inches(11, 12 + 0.22 * max(0, rows - 8))  # (8 rows, 16 names, fit its 12 inches, as ever)
    if rows:  # (the run folders' and models' names as written: a `$` in one began mathtext, a traceback)
        prop = {"size": 9 if columns == 2 else 8, "family": plots.fonts("".join(labels)).get("fontfamily")}
        # (a label starting with `_` is given with a space before it and set back after: matplotlib before 3.10
        # leaves such a label out even when it is passed explicitly, and convolab declares matplotlib>=3.7)
        legend = fig.legend(handles, [f" {label}" if label.startswith("_") else label for label in labels],
                            loc="lower center", ncol=columns, prop=prop, frameon=False)
        for text, label in zip(legend.get_texts(), labels):
            text.set_text(label)
            text.set_parse_math(False)
    if title:
        fig.suptitle(plots.figure_title(title, 100), parse_math=False, **plots.fonts(title))
    with warnings.catch_warnings():  # (matplotlib's "Tight layout not applied" is no line for the user)
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, (0.22 * rows + 0.1 * bool(rows)) / fig.get_figheight(), 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


__all__ = ["BAND", "plot_comparison", "plot_seed_comparison"]
