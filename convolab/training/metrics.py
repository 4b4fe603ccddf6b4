"""Per-epoch metrics: CSV and JSON in the run folder, and loss/accuracy curves as a PNG."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .checkpoint import atomic_write

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
           "train_seconds", "eval_seconds", "epoch_seconds", "images_per_second", "wall_seconds",
           "elapsed_seconds")


STEP_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_acc", "train_error", "images")


def write_metrics(run_dir: Path, history: list[dict[str, Any]], step_history: list[dict[str, Any]] = ()) -> None:
    """metrics.csv/.json (a row per epoch) and, if given, steps.csv (training loss, accuracy and error
    over each 10 steps; `epoch` is fractional: 2.5 is halfway through the third epoch)."""
    buf = io.StringIO()
    # Per-output accuracies of models with several heads (test_acc_aux1, test_acc_parity, ...) follow, and
    # the mean absolute errors of outputs of numbers (test_mae_age: a labels CSV's numeric column).
    extra = [k for k in (history[0] if history else {}) if k.startswith(("test_acc_", "test_mae_"))]
    writer = csv.DictWriter(buf, fieldnames=(*COLUMNS, *extra), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(run_dir / "metrics.csv", lambda tmp: Path(tmp).write_text(buf.getvalue()))
    atomic_write(run_dir / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(history, indent=1)))
    if step_history:
        steps = io.StringIO()
        writer = csv.DictWriter(steps, fieldnames=STEP_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(step_history)
        atomic_write(run_dir / "steps.csv", lambda tmp: Path(tmp).write_text(steps.getvalue()))


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
        with open(path, newline="") as f:
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


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss and accuracy by epoch, train and test, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    # The train loss is what the steps minimise (other heads' weighted losses, mixed and smoothed targets
    # included); the test loss the main output's plain cross-entropy: the legend says so.
    for split, style, what in (("train", "-", "train (training objective)"), ("test", "--", "test (cross-entropy)")):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], style, marker="o", label=what)
        ax_acc.plot(epochs, [h[f"{split}_acc"] for h in history], style, marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
