"""The progress bars of training and lr-find: the figures first, then the times, which a narrow terminal cuts first
(tqdm's own layout, with its figures' keys in alphabetical order, gives an 80-column terminal a bar of one cell and
neither the loss nor the lr)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from .build import Run
    from .state import RunState

BAR_FORMAT = "{desc} |{bar}| {n_fmt}/{total_fmt}{postfix} [{elapsed}<{remaining}]"  # (", " before a postfix: tqdm's)


def bar_wanted() -> bool:
    """Whether a bar can redraw in place: stderr is a terminal, or this is a notebook's kernel (tqdm.auto draws its
    widget). In a file or a CI log each redraw is a line of `\r` noise (a 164-epoch schedule wrote 6,400): none,
    the epoch lines say the same, as tqdm's disable=None leaves predict's and the cache's bars."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty is not None and isatty()) or "ipykernel" in sys.modules


def progress_bar(run: Run, state: RunState) -> Any:
    """A tqdm bar over the epoch's batches (rank 0, unless --no-progress or `bar_wanted` says no), else None."""
    if not (run.config.progress and run.dist.is_main and bar_wanted()):
        return None
    return tqdm(total=run.batches_per_epoch, desc=f"epoch {state.epoch + 1}/{run.config.epochs}",
                initial=state.batch_in_epoch, leave=False, dynamic_ncols=True, unit="batch", bar_format=BAR_FORMAT)


def show_progress(bar: Any, state: RunState, lr: float) -> None:
    if bar is None:
        return
    p = state.partial
    if p["seen"]:  # (none while every streamed image so far was unreadable, and skipped: no figure of none)
        bar.set_postfix_str(progress_figures(p["loss"] / p["seen"], p["correct"] / p["seen"], lr,
                                             p["seen"] / max(p["seconds"], 1e-9)), refresh=False)
    bar.update(state.batch_in_epoch - bar.n)


def progress_figures(loss: float, acc: float, lr: float, images_per_second: float) -> str:
    """`loss 2.412 acc 0.102 lr 3.0e-03 3548 img/s`: the bar's figures, most read first."""
    return f"loss {loss:.3f} acc {acc:.3f} lr {lr:.1e} {images_per_second:.0f} img/s"


def step_bar(total: int, desc: str, unit: str) -> Any:
    """A bar of `total` steps in BAR_FORMAT (lr-find's), drawn where `bar_wanted`."""
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, unit=unit, bar_format=BAR_FORMAT,
                disable=not bar_wanted())
