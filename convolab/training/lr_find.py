"""The learning-rate range test (Smith 2017, "Cyclical learning rates", section 3.3), as fastai's
`lr_find` and Lightning's `Tuner.lr_find` run it.

A fresh run is built from the config exactly as `convolab train` builds it (model, optimizer with its
momentum and weight decay, data order, augmentation, mixup/CutMix, precision); then each step trains
one batch (--accumulate batches, their gradients summed, as `train` steps) at a learning rate that
grows exponentially from `start_lr` to `end_lr`. The loss is smoothed exponentially (beta 0.98,
bias-corrected) and the test stops early once the smoothed loss exceeds 4 x the best one.

Two suggestions are read off the smoothed curve:
* `suggestion`: the learning rate of its steepest descent (Lightning's default: the most negative
  gradient of the loss over the step index, i.e. over log lr, skipping the first 10 and the last point;
  here only up to the lowest point of the curve, see `steepest_index`);
* `min_loss_lr`: the learning rate of its minimum, divided by 10 (fastai's `lr_min`).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write, write_together, write_utf8
from .._paths import making, user_path, writable_output
from .._platform import sigterm_as_interrupt
from ..data.base import LabelledImages
from ..errors import ConfigError
from .build import Run, build_run
from .config import TrainConfig
from .device import resolve_device
from .evaluation import no_image_read
from .loop import apply_lr, train_step, training_batch
from .metrics import figure_title, fonts
from .process import ProcessState
from .progress import step_bar
from .rundir import prepare_run_dir, take_default_dir

BETA = 0.98  # smoothing of the loss
DIVERGE = 4.0  # stop once the smoothed loss exceeds this many times the best
SKIP_BEGIN, SKIP_END = 10, 1  # Lightning's: the first steps' smoothed loss still follows the initial weights
MIN_STEPS = 5
FULL_CURVE = SKIP_BEGIN + SKIP_END + 2  # the points a curve needs for both skips and a gradient of two


class Terminated(KeyboardInterrupt):
    """SIGTERM during a range test: it unwinds as Ctrl-C does (the CLI says so in one line and exits 143, the status
    a shell gives a process SIGTERM ended)."""


FLAT = 0.05  # a smoothed loss that moved less than this fraction of its level over the rates read: a flat curve


@dataclass
class LRFindResult:
    """Every step's learning rate, loss and smoothed loss, and what they suggest."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped_early: bool = False  # the smoothed loss diverged (or became non-finite) before the last step
    diverged: bool = False  # it diverged at any step, the last one included (stopped_early, or at --end-lr)
    output: Path | None = None

    @property
    def suggestion_index(self) -> int | None:
        """The step where the smoothed loss falls fastest; None where it never falls, or the curve is flat (its
        steepest fall batch noise)."""
        return None if self.flat else steepest_index(self.smoothed)

    @property
    def suggestion(self) -> float | None:
        """The learning rate where the smoothed loss falls fastest (Lightning's suggestion); None where it
        never falls (`suggestion_index`)."""
        i = self.suggestion_index
        return None if i is None else self.lrs[i]

    @property
    def flat(self) -> bool:
        """Whether the smoothed loss barely moved from the first step read to the end of the range, the last step
        included (within FLAT of its level): rates too small to train, whose steepest "descent" is batch noise (at
        1e-12 it suggested 2.61e-12), where a lower --start-lr cannot help and a larger --end-lr can. (A short
        curve reads only a few steps: a loss that exploded at the last one is no flat curve.)"""
        read = considered(self.smoothed)
        span = [v for v in self.smoothed[read[0]:] if math.isfinite(v)] if read else []
        return (bool(span) and not (self.stopped_early or self.diverged)
                and max(span) - min(span) <= FLAT * abs(span[0]))

    @property
    def min_loss_lr(self) -> float:
        """The learning rate of the lowest smoothed loss `considered`, divided by 10 (fastai's `lr_min`)."""
        return self.lrs[min(considered(self.smoothed), key=self.smoothed.__getitem__)] / 10

    def summary(self) -> str:
        """One line: the suggested lr and min-loss lr / 10, or why the curve suggests none, and how the sweep ended."""
        end = (f"stopped at {self.lrs[-1]:.2e} after {len(self.lrs)} steps (loss diverging)" if self.stopped_early
               else f"{len(self.lrs)} steps up to {self.lrs[-1]:.2e}"
               + (" (loss diverging at the last)" if self.diverged else ""))
        if self.flat:
            read = read_steps(self.smoothed)
            return (f"no descent of the smoothed loss to suggest a rate from: it barely moved (within {FLAT:.0%}) up "
                    f"to {self.lrs[-1]:.2e}; {read + '; ' if read else ''}{end}")
        if self.suggestion is None:
            read = considered(self.smoothed)
            first = read[0] if read else 0
            steps = "step, whose smoothed loss still follows the first batch, is" if first == 1 else \
                f"{first} steps, whose smoothed loss still follows the first batches, are"
            skipped = f" (the first {steps} not read)" if first else ""
            return (f"no descent of the smoothed loss to suggest a rate from: it rose from step {first + 1} on, at "
                    f"{self.lrs[first]:.2e}{skipped}; {end}")
        read = read_steps(self.smoothed)
        return (f"suggested lr {self.suggestion:.2e} (steepest descent of the smoothed loss); "
                f"min-loss lr / 10 {self.min_loss_lr:.2e}; {read + '; ' if read else ''}{end}")

    def write(self, folder: str | Path, title: str = "") -> None:
        """folder/lr_find.csv (lr, loss, smoothed) and folder/lr_find.png, as one set: both written to temporary
        files, then renamed (an interrupt while the picture draws leaves neither, or the two of before)."""
        folder = user_path(folder)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("lr", "loss", "smoothed"))
        writer.writerows(zip(self.lrs, self.losses, self.smoothed))
        fig = lr_find_figure(self, title)
        with making(folder):  # (as EvaluationReport.write: a folder not there yet is made, and gone if the write fails)
            write_together([(folder / "lr_find.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100)),
                            (folder / "lr_find.csv", lambda tmp: write_utf8(tmp, buf.getvalue()))])


def considered(smoothed: list[float]) -> list[int]:
    """The indices of the finite smoothed losses both suggestions read: without the first 10, whose smoothed
    loss still follows the first batches (a lucky first batch is no minimum), and the last (Lightning's
    skip_begin and skip_end), where enough points remain (a short curve skips fewer, the start first, and
    `read_steps` says so)."""
    index = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    end = SKIP_END if len(index) > SKIP_END + 2 else 0
    begin = max(0, min(SKIP_BEGIN, len(index) - end - 2))
    return index[begin:len(index) - end]


def read_steps(smoothed: list[float]) -> str:
    """Which steps the suggestions read, where they do not read the curve as documented (its first 10 finite
    points and its last left out; then ""): a curve shorter than 13 finite points (a small --steps, or a test that
    stopped early) leaves out fewer, and the line says so rather than the README's rule quietly not holding."""
    read = considered(smoothed)
    if not read or sum(map(math.isfinite, smoothed)) >= FULL_CURVE:
        return ""
    steps = f"step {read[0] + 1}" if len(read) == 1 else f"steps {read[0] + 1}-{read[-1] + 1}"
    return (f"read from {steps} of {len(smoothed)}: too short a curve to leave out the first {SKIP_BEGIN} steps "
            f"and the last, which takes {FULL_CURVE} steps of finite loss")


def steepest_index(smoothed: list[float]) -> int | None:
    """The index of the most negative gradient of the smoothed losses `considered` (unit steps, central differences
    inside, as Lightning's); None where no descent is left (the loss rose from the first of them). Unlike
    Lightning, only the points up to the lowest are candidates, the fall into it included: with few steps the
    smoothing lags, the test can run past a divergence, and the exploding loss can then fall steeply again. The
    gradients are those of the whole curve read, so the lowest point's is central too (cut there, its one-sided
    difference was the steepest of a short curve, and the rate of the minimum itself was suggested)."""
    index = considered(smoothed)
    if len(index) < 2:
        return None
    gradients = torch.gradient(torch.tensor([smoothed[i] for i in index], dtype=torch.float64))[0]
    lowest = index.index(min(index, key=smoothed.__getitem__))
    if lowest == 0:
        return None
    return index[int(torch.argmin(gradients[:lowest + 1]))]


def check_range(start_lr: float, end_lr: float, steps: int) -> None:
    """One line for a range the test cannot run."""
    if not (start_lr > 0 and math.isfinite(start_lr)):
        raise ConfigError(f"`start_lr` must be a positive number, got {start_lr}")
    if not (end_lr > start_lr and math.isfinite(end_lr)):
        raise ConfigError(f"`end_lr` {end_lr:g} must be greater than `start_lr` {start_lr:g} (the test raises "
                          "the learning rate from start to end)")
    if steps < MIN_STEPS:
        raise ConfigError(f"`steps` must be at least {MIN_STEPS}, got {steps} (too few points to draw a curve)")


def lr_at(step: int, start_lr: float, end_lr: float, steps: int) -> float:
    """Exponential growth from start_lr (step 0) to end_lr (step steps - 1), in log space: the ratio
    end_lr / start_lr of a valid range can overflow (1e308 / 1e-7 is inf), its logarithm cannot. Every rate lies
    in [start_lr, end_lr], so it is finite."""
    if step <= 0 or step >= steps - 1:  # (the ends exactly as given)
        return start_lr if step <= 0 else end_lr
    t = step / (steps - 1)
    lr = math.exp(math.log(start_lr) + (math.log(end_lr) - math.log(start_lr)) * t)
    return min(max(lr, start_lr), end_lr)  # (exp's rounding may not step past either end)


def lr_range_test(config: TrainConfig, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
                  output: str | Path | None = None, data: LabelledImages | None = None,
                  run: Run | None = None, default_stem: str | None = None) -> LRFindResult:
    """Run the range test on a fresh run of `config` (on `data` if given, already loaded; or on the given
    `run`) and, if `output` is given (a folder), write lr_find.csv and lr_find.png there (`result.output`). The
    folder is checked before any work. `default_stem`: `output` is the folder `next_free_dir(default_stem)` named,
    and a command started beside this one that makes it first leaves this one the next free name."""
    check_range(start_lr, end_lr, steps)
    existed = output is not None and Path(output).exists()
    if output is not None:  # checked now, made once there is a curve to write (a refusal leaves no empty folder)
        writable_output(output, "`output`", "folder", create=False)
    process = ProcessState(config.threads, resolve_device(config.device).type == "cuda")  # (the caller's kept)
    with sigterm_as_interrupt(Terminated):  # (a stream's workers stop, a half-written file goes)
        with process.applied(train=True):
            if run is None:  # (no run folder: nothing is written to one, and a killed test would strand it)
                run = build_run(dataclasses.replace(config, output=None, tensorboard=False), data, folder=False)
            result = _range_test(run, start_lr, end_lr, steps)
        if output is not None and default_stem is not None and not existed:
            output = take_default_dir(output, default_stem)
        folder = prepare_run_dir(output) if output is not None else None
        result.output = folder
        if folder is not None:
            try:
                result.write(folder, f"{config.model} on {config.data}")
            except BaseException:  # (a Ctrl-C while the picture draws: the folder this call made goes too)
                if not existed:
                    with contextlib.suppress(OSError):
                        folder.rmdir()  # (only if empty)
                raise
    return result


def _range_test(run: Run, start_lr: float, end_lr: float, steps: int) -> LRFindResult:
    result = LRFindResult()
    bar = _progress_bar(run, steps)
    run.model.train()
    epoch, batches = 0, run.batches.train_batches(0)
    average, best = 0.0, math.inf
    accumulate = run.config.accumulate  # batches per optimizer step, as `train` sums them
    try:
        for step in range(steps):
            lr = lr_at(step, start_lr, end_lr, steps)
            apply_lr(run.optimizer, lr)
            loss = 0.0
            for micro in range(accumulate):
                images, y, idx = _next_batch(run, batches)
                if images is None:  # the epoch is over: the next one, in its own order
                    batches.close()
                    epoch += 1
                    batches = run.batches.train_batches(epoch)
                    images, y, idx = _next_batch(run, batches)
                    if images is None:  # a whole epoch of streamed images skipped as unreadable
                        raise no_image_read(run, "training")
                x, targets, mix = training_batch(run, images, idx)  # (as the training loop makes it)
                loss += train_step(run, x, y, targets, mix, micro)[0].item() / accumulate
            average = BETA * average + (1 - BETA) * loss
            smoothed = average / (1 - BETA ** (step + 1))
            result.lrs.append(lr)
            result.losses.append(loss)
            result.smoothed.append(smoothed)
            if bar is not None:
                bar.set_postfix_str(f"lr {lr:.1e} loss {smoothed:.3f}", refresh=False)
                bar.update(1)
            if not math.isfinite(smoothed) or (step > 0 and smoothed > DIVERGE * best):
                result.stopped_early, result.diverged = step < steps - 1, True
                break
            best = min(best, smoothed)
    finally:
        batches.close()
        run.batches.close()  # (a stream's workers end with the test)
        if bar is not None:
            bar.close()
    if not any(math.isfinite(v) for v in result.smoothed):
        raise ConfigError(f"the loss was not finite from the first step at lr {start_lr:g}: lower `start_lr`")
    return result


def _next_batch(run: Run, batches: Any) -> tuple[Any, Any, Any]:
    """The next non-empty batch of the epoch, or (None, None, None) at its end."""
    for images, y, idx in batches:
        if len(y):  # (a streamed batch whose images were all unreadable is empty)
            return images, y, idx
    return None, None, None


def _progress_bar(run: Run, steps: int) -> Any:
    if not run.config.progress:
        return None
    return step_bar(steps, "lr-find", "step")


def plot_lr_find(result: LRFindResult, path: Path, title: str = "") -> None:
    """The loss and smoothed loss against the learning rate (log x), both suggestions marked, as a PNG."""
    fig = lr_find_figure(result, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def lr_find_figure(result: LRFindResult, title: str = "") -> Any:
    """plot_lr_find's figure."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    i = result.suggestion_index
    if i is not None:
        ax.plot([result.lrs[i]], [result.smoothed[i]], "o", color="C3", ms=9,
                label=f"suggestion {result.suggestion:.2e} (steepest)")
        ax.axvline(result.min_loss_lr, color="C2", ls="--", lw=1, label=f"min-loss lr / 10 {result.min_loss_lr:.2e}")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    low, high = min(finite), max(finite[0], min(finite) * 1.2)
    span = high - low + 1e-9
    ax.set_ylim(low - 0.15 * span, high + 0.3 * span)  # from the best to the start: the diverging tail clipped
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss")
    title = title or "learning-rate range test"  # (a `$` in the data's path: no maths; 中文: a font that has it, or ?)
    ax.set_title(figure_title(title), parse_math=False, **fonts(title))
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


__all__ = ["LRFindResult", "Terminated", "check_range", "considered", "lr_at", "lr_range_test", "plot_lr_find",
           "read_steps", "steepest_index"]
