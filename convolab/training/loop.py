"""The training loop: `fit`, read top to bottom, is the one place a run takes its steps.

    for each epoch (until --epochs, the time budget, early stopping or a stop signal):
        for each remaining batch: transform, step (forward, weighted loss, backward, optimizer, EMA)
            every 10 steps: fold the sums into the run state (a stop signal is honoured only here)
        evaluate, add the epoch's row, save last.pt (and best.pt), write the metrics and curves

Data order, augmentation and learning rate are functions of (seed, epoch, step), and the partial sums
live in the run state, so a run saved mid-epoch resumes to the same numbers.
"""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConvolabError
from .build import Run
from .device import autocast, device_clock
from .evaluation import evaluate_run
from .metrics import plot_curves, write_metrics
from .optim import lr_factor
from .rundir import write_run_config
from .state import RunState, no_partial

log = logging.getLogger("convolab")


class TrainingInterrupted(ConvolabError):
    """Ctrl-C or SIGTERM: the state was saved and the run can be resumed."""


class NonFiniteLoss(ConvolabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    best_acc: float
    best_epoch: int
    test_acc: float
    stopped_early: bool = False


class Trainable(Protocol):
    """What `fit` drives: the run's parts and progress, its step, its checkpoints, its stop signal."""

    run: Run
    state: RunState
    _stop_signal: int | None

    def _train_step(self, x: torch.Tensor, y: torch.Tensor,
                    targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def save(self, name: str) -> None: ...


def fit(trainer: Trainable) -> TrainResult:
    """Train to the configured number of epochs (or early stop, or the time budget); SIGINT/SIGTERM
    save and stop. Each step goes through `trainer._train_step`, each checkpoint through `trainer.save`."""
    run, cfg, state = trainer.run, trainer.run.config, trainer.state
    if run.dist.is_main:
        write_run_config(run.run_dir, cfg, run.resolved())
    stopped_early = False
    with stop_signals(trainer):
        while state.epoch < cfg.epochs:
            # The time budget, checked before each epoch: a resumed run whose budget is spent trains no more.
            if cfg.budget_seconds is not None and state.wall_seconds >= cfg.budget_seconds:
                stopped_early = True
                log.info("time budget of %gs reached after epoch %d (%.1fs of training)", cfg.budget_seconds,
                         state.epoch, state.wall_seconds)
                break

            # ----- the epoch's remaining steps
            batches = run.batches.train_batches(state.epoch, state.batch_in_epoch)
            lr = set_lr(run, state.step)
            bar = progress_bar(run, state)
            # The running sums of the steps since the last fold (those a stopped run left, if any).
            pending = state.pending
            loss_sum = torch.tensor(pending["loss"], device=run.device)
            correct_sum = torch.tensor(int(pending["correct"]), device=run.device, dtype=torch.long)
            seen, start, interrupted = int(pending["seen"]), device_clock(run.device) - pending["seconds"], False
            run.model.train()
            try:
                while state.batch_in_epoch < run.steps_per_epoch:
                    # A stop signal is honoured before the next step; the sums since the last fold are
                    # kept in the state, so a resumed run adds the same numbers in the same order as one
                    # never stopped. Several processes check at the folds only (agreeing on the step to
                    # stop at takes an all-reduce).
                    if (seen == 0 or not run.dist.enabled) and should_stop(trainer):
                        interrupted = True
                        break
                    images, y, idx = next(batches)
                    if len(y):  # (a streamed batch whose images were all unreadable and skipped is empty)
                        x = run.transform(images, train=True, generator=run.aug_generator)
                        targets = {name: t[idx] for name, t in run.train_targets.items()}
                        lr = set_lr(run, state.step)
                        loss, correct = trainer._train_step(x, y, targets)
                        loss_sum += loss * len(y)
                        correct_sum += correct
                        seen += len(y)
                    state.step += 1
                    state.batch_in_epoch += 1
                    if state.batch_in_epoch % 10 == 0 or state.batch_in_epoch == run.steps_per_epoch:
                        now = device_clock(run.device)  # the queued steps are done: they count in full
                        # Summed over the ranks; the seconds averaged, so that every rank sees the same
                        # clock (a time budget must stop all of them after the same epoch).
                        loss, correct, count, seconds = run.dist.sum(loss_sum.item(), correct_sum.item(), seen,
                                                                     now - start)
                        state.fold(loss, correct, count, seconds / run.dist.world_size, lr, run.steps_per_epoch)
                        loss_sum.zero_()
                        correct_sum.zero_()
                        seen, start = 0, time.perf_counter()
                        if not math.isfinite(state.partial["loss"]):
                            raise NonFiniteLoss(
                                f"the training loss became {state.partial['loss']} at step {state.step} (epoch "
                                f"{state.epoch + 1}); lower --lr (now {cfg.base_lr:g}) or add --clip-grad; "
                                + (f"{run.run_dir / 'last.pt'} holds the last good state (epoch {state.epoch})"
                                   if state.epoch else "no epoch finished, so nothing was saved"))
                        show_progress(bar, state, lr)
            finally:
                batches.close()
                if bar is not None:
                    bar.close()
            state.pending = {"loss": loss_sum.item(), "correct": int(correct_sum.item()), "seen": seen,
                             "seconds": time.perf_counter() - start} if interrupted else no_partial()
            if interrupted:
                trainer.save("last.pt")
                raise TrainingInterrupted(
                    f"stopped by signal {trainer._stop_signal} in epoch {state.epoch + 1}; state saved to "
                    f"{run.run_dir / 'last.pt'}; continue with: convolab train --resume {run.run_dir}")

            # ----- evaluation, the epoch's row, checkpoints and metrics
            eval_start = device_clock(run.device)
            test = evaluate_run(run, run.ema.module if run.ema is not None else run.model)
            now = device_clock(run.device)
            state.wall_seconds += state.partial["seconds"]
            row = epoch_row(run, state, test, now - eval_start, now)
            improved = state.end_epoch(row, cfg.min_delta)
            trainer.save("last.pt")
            if improved:
                trainer.save("best.pt")
            report_epoch(run, state, row)

            # ----- early stopping
            if cfg.patience is not None and state.epochs_since_best >= cfg.patience:
                stopped_early = state.epoch < cfg.epochs
                if stopped_early:
                    log.info("early stop: no improvement of test accuracy for %d epochs", cfg.patience)
                break
    if run.tensorboard is not None:
        run.tensorboard.close()
    last = state.history[-1] if state.history else {"test_acc": float("nan")}
    return TrainResult(run.run_dir, state.history, state.best_acc, state.best_epoch, last["test_acc"],
                       stopped_early)


# ----- the step ------------------------------------------------------------------------------------
def train_step(run: Run, x: torch.Tensor, y: torch.Tensor,
               targets: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; its loss and number of correct main predictions (on the device)."""
    with autocast(run.device, run.amp_dtype):
        outputs = run.forward_model(x)
    loss = weighted_loss(outputs, y, targets, run.loss_weights, run.config.label_smoothing)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.config.clip_grad:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_grad)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update(run.model)
    correct = (outputs["main"].detach().argmax(1) == y).sum()
    return loss.detach(), correct


def weighted_loss(outputs: dict[str, torch.Tensor], y: torch.Tensor, targets: dict[str, torch.Tensor] | None,
                  weights: dict[str, float], smoothing: float) -> torch.Tensor:
    """Weighted sum of each output's cross-entropy against its own target, else the labels."""
    targets = targets or {}
    loss = weights["main"] * F.cross_entropy(outputs["main"].float(), y, label_smoothing=smoothing)
    for name, logits in outputs.items():
        if name != "main":
            loss = loss + weights[name] * F.cross_entropy(logits.float(), targets.get(name, y),
                                                          label_smoothing=smoothing)
    return loss


def set_lr(run: Run, step: int) -> float:
    """The scheduled learning rate of `step`, set in every optimizer group (times its `lr_scale`)."""
    lr = run.config.base_lr * lr_factor(step, run.total_steps, run.config.schedule, run.warmup_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # e.g. a fine-tuned backbone's lower rate
    return lr


# ----- the epoch's end -----------------------------------------------------------------------------
def epoch_row(run: Run, state: RunState, test: dict[str, Any], eval_seconds: float, now: float) -> dict[str, Any]:
    """metrics.csv's row of the epoch just trained (state.partial holds its sums)."""
    p = state.partial
    row = {
        "epoch": state.epoch + 1, "step": state.step,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": p["loss"] / max(1, p["seen"]), "train_acc": p["correct"] / max(1, p["seen"]),
        "test_loss": test["loss"], "test_acc": test["acc"],
        # What each time covers: train_seconds the training steps of this epoch (data waits
        # included, the device synchronized); eval_seconds the test-set evaluation; epoch_seconds
        # both; wall_seconds the training steps of all epochs so far (what --budget-seconds
        # counts); elapsed_seconds this command's time since the trainer began (data loading,
        # checkpoints and plots of earlier epochs included; a resumed run counts from its restart).
        "train_seconds": p["seconds"], "eval_seconds": eval_seconds, "epoch_seconds": p["seconds"] + eval_seconds,
        "images_per_second": p["seen"] / max(p["seconds"], 1e-9),
        "wall_seconds": state.wall_seconds, "elapsed_seconds": now - run.started,
    }
    row.update({f"test_acc_{name}": test[f"acc_{name}"] for name in run.scored_outputs})
    return row


def report_epoch(run: Run, state: RunState, row: dict[str, Any]) -> None:
    """metrics.csv/json, steps.csv and curves.png (rank 0), TensorBoard, and the epoch's log line."""
    if run.dist.is_main:
        write_metrics(run.run_dir, state.history, state.step_history)
        plot_curves(state.history, run.run_dir / "curves.png", f"{run.config.model} on {run.config.data}")
    if run.tensorboard is not None:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_second"):
            run.tensorboard.add_scalar(key, row[key], row["epoch"])
        run.tensorboard.flush()
    log.info("epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.0f img/s  %.1fs "
             "(train %.1fs + test %.1fs; %.1fs since start)",
             row["epoch"], run.config.epochs, row["train_loss"], row["train_acc"], row["test_loss"],
             row["test_acc"], row["images_per_second"], row["epoch_seconds"], row["train_seconds"],
             row["eval_seconds"], row["elapsed_seconds"])
    if run.scored_outputs:
        log.info("  test acc per output: %s", ", ".join(f"{n} {row[f'test_acc_{n}']:.4f}" for n in run.scored_outputs))


# ----- progress and signals ------------------------------------------------------------------------
def progress_bar(run: Run, state: RunState) -> Any:
    """A tqdm bar over the epoch's batches (rank 0, unless --no-progress), else None."""
    if not (run.config.progress and run.dist.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=run.steps_per_epoch, desc=f"epoch {state.epoch + 1}/{run.config.epochs}",
                initial=state.batch_in_epoch, leave=False, dynamic_ncols=True, unit="batch")


def show_progress(bar: Any, state: RunState, lr: float) -> None:
    if bar is None:
        return
    p = state.partial
    bar.set_postfix(loss=f"{p['loss'] / p['seen']:.4f}", acc=f"{p['correct'] / p['seen']:.4f}", lr=f"{lr:.2e}",
                    img_s=f"{p['seen'] / max(p['seconds'], 1e-9):.0f}", refresh=False)
    bar.update(state.batch_in_epoch - bar.n)


def should_stop(trainer: Trainable) -> bool:
    """A stop signal arrived (on any rank: all must stop at the same step, or the others would
    wait forever in the next all-reduce)."""
    stop = trainer.run.dist.any(trainer._stop_signal is not None)
    if stop and trainer._stop_signal is None:
        trainer._stop_signal = signal.SIGTERM
    return stop


@contextlib.contextmanager
def stop_signals(trainer: Trainable):
    """SIGINT and SIGTERM recorded in `trainer._stop_signal` while fitting: the loop saves and stops before
    its next step. A second signal stops at once: the checkpoints already written are whole (each is
    written to a temporary file, then renamed), and the run resumes from the last one. Copies of one request
    (the --nproc launcher passes a Ctrl-C on to ranks that got it too) count once: a second signal is one
    sent a second or more after the first."""
    first: list[float] = []  # when the first signal came

    def handler(signum, _frame):
        # A copy of the same request (Ctrl-C reaches the --nproc launcher and its ranks at once, and the
        # launcher passes it on) arrives within milliseconds: a second signal counts a second on.
        if trainer._stop_signal is None or not first or time.monotonic() - first[0] < 1.0:
            first[:] = first or [time.monotonic()]
            trainer._stop_signal = trainer._stop_signal or signum
            return
        raise TrainingInterrupted(
            f"stopped at once by a second signal {signum}; {trainer.run.run_dir / 'last.pt'} holds the state "
            f"last saved (if any); continue with: convolab train --resume {trainer.run.run_dir}")

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["NonFiniteLoss", "TrainResult", "Trainable", "TrainingInterrupted", "fit", "train_step",
           "weighted_loss"]
