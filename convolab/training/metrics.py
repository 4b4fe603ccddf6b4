"""Per-epoch metrics: CSV and JSON in the run folder, and loss/accuracy curves as a PNG."""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import math
import statistics
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._atomic import RefusedWrite, json_text
from ..errors import ConfigError, ConvolabError, DiskFullError, TrainingInterrupted
from .checkpoint import atomic_write

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
           "train_seconds", "eval_seconds", "epoch_seconds", "images_per_second", "wall_seconds",
           "elapsed_seconds")

COMPILE_COLUMN = "compile_seconds"  # with --compile: the step that compiled the model, within train_seconds

log = logging.getLogger("convolab")

STEP_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_acc", "train_error", "images")


def write_metrics(run_dir: Path, history: list[dict[str, Any]], step_history: list[dict[str, Any]] = ()) -> None:
    """metrics.csv/.json (a row per epoch) and, if given, steps.csv (training loss, accuracy and error
    over each 10 steps; `epoch` is fractional: 2.5 is halfway through the third epoch)."""
    buf = io.StringIO()
    # Per-output accuracies of models with several heads (test_acc_aux1, test_acc_parity, ...) follow, and
    # the mean absolute errors of outputs of numbers (test_mae_age: a labels CSV's numeric column).
    extra = [k for k in (history[0] if history else {}) if k.startswith(("test_acc_", "test_mae_"))]
    # --compile's compile_seconds after the other times (0 in epochs before a --resume that added --compile)
    timed = (COMPILE_COLUMN,) if any(COMPILE_COLUMN in row for row in history) else ()
    writer = csv.DictWriter(buf, fieldnames=(*COLUMNS, *timed, *extra), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{COMPILE_COLUMN: 0.0, **row} for row in history] if timed else history)
    atomic_write(run_dir / "metrics.csv", lambda tmp: Path(tmp).write_text(buf.getvalue(), encoding="utf-8"))
    atomic_write(run_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json_text(history), encoding="utf-8"))
    if step_history:
        steps = io.StringIO()
        writer = csv.DictWriter(steps, fieldnames=STEP_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(step_history)
        atomic_write(run_dir / "steps.csv", lambda tmp: Path(tmp).write_text(steps.getvalue(), encoding="utf-8"))


# The columns every metrics.csv has held (later ones added more): a file without one of them is damaged.
ALWAYS_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds",
                  "images_per_second", "wall_seconds")


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of run_dir/metrics.csv as numbers; one line naming the file where it is damaged (no header,
    a column missing, a row cut short or too long, a value that is not a number)."""
    return _read_numbers(Path(run_dir) / "metrics.csv", ALWAYS_COLUMNS)


def read_steps(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of steps.csv (none for a run written before it existed); damaged: one line, as metrics.csv."""
    path = Path(run_dir) / "steps.csv"
    return _read_numbers(path, ()) if path.is_file() else []


def _read_numbers(path: Path, columns: tuple[str, ...]) -> list[dict[str, float]]:
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing or not reader.fieldnames:
                raise damaged_metrics(path, "no header line" if not reader.fieldnames else
                                      f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}")
            for row in reader:  # a short row has None values; a long one a list under the key None
                try:
                    rows.append({k: float(v) for k, v in row.items()})
                except (TypeError, ValueError):
                    raise damaged_metrics(path, f"line {reader.line_num} is not a row of numbers under "
                                                "its header") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise damaged_metrics(path, str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    return rows


def damaged_metrics(path: Path, why: str) -> ConfigError:
    return ConfigError(f"{path} is damaged ({why}); restore it from a copy, or leave the run out or train "
                       "it again")


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "", data: str = "",
                scored: str = "test") -> None:
    """Loss and accuracy by epoch, train and test, side by side; a loss that is not a number marked. The
    title: `title` (the model) on `data`'s short name. `scored`: what the test_* columns score, named in the legend
    ("validation" for the images --val-fraction held out of data with a test split of their own)."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    # The train loss is what the steps minimise (other heads' weighted losses, mixed and smoothed targets
    # included); the test loss the main output's plain cross-entropy: the legend says so.
    for split, style, what, named in (("train", "-", "train (training objective)", "train"),
                                      ("test", "--", f"{scored} (cross-entropy)", scored)):
        for ax, key, label in ((ax_loss, "loss", what), (ax_acc, "acc", named)):
            values = [h[f"{split}_{key}"] for h in history]
            line, = ax.plot(epochs, finite(values), style, marker="o", label=label, markevery=marks(len(epochs)))
            mark_nonfinite(ax, epochs, values, line.get_color())
    losses = [v for h in history for k in ("train_loss", "test_loss") if math.isfinite(v := h[k])]
    # a diverging run's losses span many decades: on a linear axis all but the largest read as 0
    log_loss = bool(losses) and min(losses) > 0
    ax_loss.set(xlabel="epoch", ylabel="loss" + (" (log scale)" if log_loss else ""), title="loss",
                yscale="log" if log_loss else "linear")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        plain_log_ticks(ax)
        epoch_axis(ax, len(epochs))
        ax.grid(alpha=0.3)
        ax.legend()
    title = f"{title} on {data_name(data)}" if data else title
    if title:
        # (a `$` of a data folder's name began mathtext; one in Chinese is drawn in a font that has it)
        fig.suptitle(figure_title(title), parse_math=False, **fonts(title))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


class Curves:
    """A run's curves.png, drawn after an epoch when the drawing costs at most a tenth of the time since it was
    last drawn (a drawing is 0.15-0.4 s: after every epoch of a small model it was a fifth to a third of the
    run's wait), and always by `finish`, as the run ends however it ends; the first epoch's always."""

    SHARE = 0.1  # of the time between drawings, at most, spent drawing

    def __init__(self, path: Path, title: str = "", data: str = "", drawing: bool = True, scored: str = "test"):
        self.path, self.title, self.data, self.drawing = path, title, data, drawing  # (drawing: rank 0's)
        self.scored = scored  # (what the test_* columns score: `plot_curves`)
        self.cost: float | None = None  # seconds the last drawing took (None: none yet)
        self.drawn_at = 0.0
        self.epochs_drawn = 0

    def after_epoch(self, history: list[dict[str, Any]]) -> None:
        """Draw `history` if it is the first epoch's, or if the last drawing was long enough ago."""
        if self.drawing and (self.cost is None or time.perf_counter() - self.drawn_at >= self.cost / self.SHARE):
            self.draw(history)

    def finish(self, history: list[dict[str, Any]]) -> None:
        """Draw `history` unless its last epoch is drawn already (the run ended: its picture is complete)."""
        if self.drawing and history and self.epochs_drawn != len(history):
            self.draw(history)

    @contextlib.contextmanager
    def complete_at_the_end(self, history: list[dict[str, Any]]) -> Iterator[None]:
        """`finish` as the block ends: at its last epoch, early stopping, the time budget, and on a convolab error
        (a stop signal, a diverged loss), whose line a failed drawing does not replace."""
        try:
            yield
        except (ConvolabError, TrainingInterrupted):
            with contextlib.suppress(Exception):
                self.finish(history)
            raise
        try:
            self.finish(history)
        except (RefusedWrite, DiskFullError) as err:  # (every epoch is saved: the run is complete, not stopped)
            log.warning("the last curves could not be drawn: %s (the run is complete: metrics.csv holds every epoch)",
                        err.line if isinstance(err, RefusedWrite) else err)

    def draw(self, history: list[dict[str, Any]]) -> None:
        began = time.perf_counter()
        plot_curves(history, self.path, self.title, data=self.data, scored=self.scored)
        self.drawn_at = time.perf_counter()
        self.cost, self.epochs_drawn = self.drawn_at - began, len(history)


# ----- shared by every picture of curves (a run's, compare's, reproduce's) -------------------------------
def data_name(data: str) -> str:
    """The short name of a data set in a title: a path's last component, an archive's name without .tar.gz."""
    name = Path(str(data).rstrip("/\\") or str(data)).name or str(data)
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def marks(points: int) -> int:
    """Every how many points a line's markers go: each up to 50, then about 50 in all (at 1,000 epochs a marker per
    epoch drew the lines as bands of dots, train and test alike)."""
    return max(1, -(-points // 50))


def figure_title(text: str, width: int = 80) -> str:
    """`text` wrapped to lines a figure's width holds (a long title was cut at both edges), a character the
    font lacks as ? (matplotlib drew a box and warned once per glyph). Draw it with parse_math=False: a `$` in a
    name is a dollar (mathtext failed on `$5_to_$10`, and drew `$5-$10` as 5-10 in italics)."""
    lines = marked(str(text).splitlines())  # (each line: a line break is no glyph, which drew it as ?)
    return "\n".join(textwrap.fill(line, width) or line for line in lines)


def marked(names: list[str]) -> list[str]:
    """Each name with every character no font draws (see `undrawable`) as ?: matplotlib drew a box for it and
    warned once per glyph."""
    missing = undrawable("".join(names))
    return ["".join("?" if c in missing else c for c in name) for name in names] if missing else list(names)


def drawable(names: list[str]) -> list[str]:
    """Names as a legend can draw them (`marked`), and where they then look alike, each after its place (1: ?????,
    2: ?????), as a legend's entries must differ."""
    drawn = marked(names)
    return [f"{i}: {name}" for i, name in enumerate(drawn, 1)] if len(set(drawn)) < len(drawn) else drawn


def undrawable(text: str) -> set[str]:
    """The characters of `text` that no font convolab draws it with has a glyph for (中文 where no installed font
    has Chinese: DejaVu Sans, matplotlib's own, lacks it; see `fonts`), and the control characters (a tab:
    matplotlib warned of its missing glyph)."""
    lacking = _lacking(text)
    drawn = set().union(*_fallbacks(frozenset(lacking)).values()) if lacking else set()
    return {c for c in set(text) if not c.isprintable()} | (lacking - drawn)


def fonts(text: str) -> dict[str, Any]:
    """`fontfamily` for a matplotlib text holding `text`: matplotlib's own families, then the installed fonts that
    draw what its own font lacks (Noto Sans CJK, Microsoft YaHei, PingFang...: matplotlib takes each glyph from the
    first family that has it); {} where its own font draws it all. Class names in Chinese were drawn as ?."""
    lacking = _lacking(text)
    extra = list(_fallbacks(frozenset(lacking))) if lacking else []
    if not extra:
        return {}
    from matplotlib import rcParams

    return {"fontfamily": [*rcParams["font.family"], *extra]}


def _lacking(text: str) -> set[str]:
    """The printable characters of `text` matplotlib's own font has no glyph for."""
    from matplotlib.font_manager import FontProperties, findfont, get_font

    font = get_font(findfont(FontProperties()))
    return {c for c in set(text) if c.isprintable() and font.get_char_index(ord(c)) == 0}


def _fallbacks(chars: frozenset[str]) -> dict[str, set[str]]:
    """Installed fonts that draw characters of `chars` (family name: those it draws), as few as draw all that any
    draws. matplotlib's Last Resort font, whose every glyph is an empty box, is none of them."""
    from matplotlib.font_manager import fontManager

    installed = {(f.name, f.fname) for f in fontManager.ttflist if not f.name.startswith("Last Resort")}
    return _choose_fonts(chars, tuple(sorted(installed)))


@functools.cache
def _choose_fonts(chars: frozenset[str], installed: tuple[tuple[str, str], ...]) -> dict[str, set[str]]:
    from matplotlib.font_manager import get_font

    cover: dict[str, set[str]] = {}
    for name, path in installed:  # (each file opened once a session; matplotlib keeps them)
        try:
            font = get_font(path)
        except (OSError, RuntimeError, ValueError):  # (a font file FreeType cannot read: not one to draw with)
            continue
        drawn = {c for c in chars if font.get_char_index(ord(c))}
        if drawn:
            cover[name] = cover.get(name, set()) | drawn
    chosen: dict[str, set[str]] = {}
    left = set(chars)
    while left and cover:  # greedily, the font that draws most of what is left (the first by name among equals)
        name = max(sorted(cover), key=lambda n: len(cover[n] & left))
        drawn = cover.pop(name) & left
        if not drawn:
            break
        chosen[name] = drawn
        left -= drawn
    return chosen


def epoch_axis(ax: Any, epochs: int) -> None:
    """Whole epochs only on an x axis of `epochs` epochs (one epoch alone was ticked 0.96, 1.0, 1.04)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlim(0.5, max(1, epochs) + 0.5)


def plain_log_ticks(ax: Any) -> None:
    """A log y axis ticked 2.4, 2.45 (where it spans less than a decade) or 1e+15, not 2.45 x 10^0."""
    from matplotlib.ticker import LogFormatter

    if ax.get_yscale() == "log":
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def mark_nonfinite(ax: Any, x: list[float], values: list[float], color: Any) -> None:
    """An x at the top edge (the bottom for -inf) of each point that is not a number, with what it is:
    a line simply stopping does not say the run diverged."""
    for xi, v in zip(x, values):
        if not math.isfinite(v):
            edge = 0.0 if v < 0 else 1.0
            ax.plot([xi], [edge], "x", color=color, markersize=9, mew=2, clip_on=False,
                    transform=ax.get_xaxis_transform())
            ax.annotate("nan" if math.isnan(v) else str(v), (xi, edge), xycoords=ax.get_xaxis_transform(),
                        xytext=(4, -10 if edge else 4), textcoords="offset points", color=color, fontsize=8)


def whole_windows(rows: list[dict[str, float]]) -> tuple[list[int], list[float]]:
    """The steps.csv rows worth a point of a curve by step and where: each window's centre step. The last
    window of an epoch may average a step or two (its `images` says): one under half the others' images is
    left out, as its point is noise (it drew a cliff at every epoch's end)."""
    nominal = max((r.get("images", 0.0) for r in rows), default=0.0)
    kept, centres, last = [], [], 0.0
    for i, r in enumerate(rows):
        if 2 * r.get("images", nominal) >= nominal:
            kept.append(i)
            centres.append((last + 1 + r["step"]) / 2)
        last = r["step"]
    return kept, centres


STEPS_LABEL = "mean of each 10 steps"  # (a window ends at an epoch's end too: `steps_label` says what is drawn)


def steps_label(run_dirs: list[str | Path]) -> str:
    """What each point of `step_points`' curves of `run_dirs` averages, from the windows drawn: "mean of each 10
    steps", "mean of each 10 steps, 5 at an epoch's end" (an epoch of 15), "mean of each epoch's 4 steps" (an
    epoch of 4: every window is one); STEPS_LABEL where no run has steps.csv."""
    lengths, whole_epochs = set(), True
    for rows in (read_steps(d) for d in run_dirs):
        kept, _ = whole_windows(rows)
        for i in kept:
            lengths.add(round(rows[i]["step"] - (rows[i - 1]["step"] if i else 0)))
            # an epoch's last window ends on a whole epoch, its first begins at one
            whole_epochs &= rows[i]["epoch"] == round(rows[i]["epoch"]) and (i == 0 or rows[i - 1]["epoch"] ==
                                                                              round(rows[i - 1]["epoch"]))
    if not lengths:
        return STEPS_LABEL
    most, fewer = max(lengths), sorted(lengths - {max(lengths)}, reverse=True)
    if whole_epochs:
        return "each epoch's one step" if lengths == {1} else \
            f"mean of each epoch's {' or '.join(str(n) for n in sorted(lengths))} steps"
    short = (f", {fewer[0]} at an epoch's end" if len(fewer) == 1 else ", fewer at an epoch's end") if fewer else ""
    return f"mean of each {most} steps{short}"


def axis_label(text: str, width: int = 42) -> str:
    """`text` in lines of at most `width` characters: a step curve's axis label names its windows ("training error
    (1 - accuracy, mean of each 10 steps, 5 at an epoch's end)"), longer than a panel is high."""
    return textwrap.fill(text, width)


def step_points(run_dirs: list[str | Path], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """A curve by step of steps.csv's `key` over runs: the centres of the whole windows (whole_windows) and
    the mean, lowest and highest value at each, over the runs that reached it."""
    tables = [read_steps(d) for d in run_dirs]
    kept, centres = whole_windows(max(tables, key=len, default=[]))
    columns = [[t[i][key] for t in tables if len(t) > i] for i in kept]
    return (centres, [statistics.fmean(c) for c in columns], [min(c) for c in columns],
            [max(c) for c in columns])
