"""The training loop: `fit`, read top to bottom, is the one place a run takes its steps.

    for each epoch (until --epochs, the time budget, early stopping or a stop signal):
        for each remaining batch: transform (and mixup/CutMix), forward, weighted loss, backward;
            after each --accumulate batches: optimizer step, EMA (a stop signal is honoured only here)
            every 10 optimizer steps: fold the sums into the run state
        evaluate, add the epoch's row, save last.pt (and best.pt), write the metrics and curves

Data order, augmentation and learning rate are functions of (seed, epoch, step), and the partial sums
live in the run state, so a run saved mid-epoch resumes to the same numbers.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .._atomic import remove_stale_temporaries
from .._platform import signal_name
from ..data import StreamingImageData
from ..errors import ConvolabError
from .build import Run
from .config import CUDA_GRAPH_MODES
from .derived import say_made_before_best
from .device import autocast, device_clock
from .evaluation import evaluate_run, no_image_read
from .metrics import Curves, write_metrics
from .mixing import Mix, mix_batch
from .optim import lr_factor
from .progress import progress_bar, show_progress
from .rundir import forget_unsaved_run, write_run_config
from .signals import TrainingInterrupted, resume_command, should_stop, stop_signals
from .state import RunState, no_partial
from .targets import output_target

log = logging.getLogger("convolab")


class NonFiniteLoss(ConvolabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What `fit` returns: the run folder, one history row per epoch, best.pt's test accuracy and epoch (best by
    `monitor`), the last epoch's test accuracy (nan: no epoch), and whether early stopping or the budget ended it.
    The test figures are those of the images each epoch is scored on: of validation images (`scored_split`), where
    the test split was kept unseen; `unseen_test` then holds best.pt's figures on that test split, scored once at the
    end (`Trainer.fit`; test.json's), else None."""

    run_dir: Path
    history: list[dict[str, Any]]
    best_acc: float
    best_epoch: int
    test_acc: float
    stopped_early: bool = False
    unseen_test: dict[str, Any] | None = None


class Trainable(Protocol):
    """What `fit` drives: the run's parts and progress, its step, its checkpoints, its stop signal."""

    run: Run
    state: RunState
    _stop_signal: int | None

    def train_step(self, x: torch.Tensor, y: torch.Tensor, targets: dict[str, torch.Tensor],
                   mix: Mix | None = None, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch's forward, loss and backward: its loss and correct count (`Trainer.train_step`)."""

    def save(self, name: str) -> None:
        """Write the run's checkpoint as `name` (best.pt, last.pt) in the run folder."""


def fit(trainer: Trainable) -> TrainResult:
    """Train to the configured number of epochs (or early stop, or the time budget); SIGINT/SIGTERM
    save and stop. Each step goes through `trainer.train_step`, each checkpoint through `trainer.save`."""
    run, cfg, state = trainer.run, trainer.run.config, trainer.state
    if run.dist.is_main:
        for path in remove_stale_temporaries(run.run_dir):  # a checkpoint half-written when a kill came
            log.info("removed %s, left by a write that was killed", path)
        write_run_config(run.run_dir, cfg, run.resolved(), own_model=not getattr(run.model, "model_name", ""))
    stopped_early, compiling = False, cfg.compile  # (this process's first step compiles: timed apart)
    # A resumed run's clock starts at its restart, while the epoch it resumed in counts its steps before the stop
    # too: its lines say "since resuming", lest an epoch seem longer than the time since start
    since = "resuming" if state.step else "start"
    curves = Curves(run.run_dir / "curves.png", cfg.model, cfg.data, drawing=run.dist.is_main,
                    scored=scored_split(run.data))
    with stop_signals(trainer), curves.complete_at_the_end(state.history):
        while state.epoch < cfg.epochs:
            # The time budget, checked before each epoch: a resumed run whose budget is spent trains no more.
            if cfg.budget_seconds is not None and state.wall_seconds >= cfg.budget_seconds:
                stopped_early = True
                log.info("time budget of %gs reached after epoch %d (%.1fs of training)", cfg.budget_seconds,
                         state.epoch, state.wall_seconds)
                break
            # Early stopping, checked before each epoch too: a resumed run that stopped early trains no more
            # unless a larger --patience lets it.
            if cfg.patience is not None and state.epoch > 0 and state.batch_in_epoch == 0 \
                    and state.epochs_since_best >= cfg.patience:
                stopped_early = True
                log.info("the run stopped early after epoch %d (%s); a larger `patience` trains it further",
                         state.epoch, no_gain(cfg.monitor, cfg.min_delta, state.epochs_since_best,
                                              scored_split(run.data)))
                break

            # ----- the epoch's remaining steps
            batches = run.batches.train_batches(state.epoch, state.batch_in_epoch)
            lr = set_lr(run, state.step)
            bar = progress_bar(run, state)
            # The running sums of the steps since the last fold (those a stopped run left, if any: only one
            # process was running, since several stop at folds only; rank 0 takes them, lest a run resumed
            # under --nproc count them once per rank; the seconds every rank, as they are averaged).
            pending = state.pending if run.dist.is_main else {**state.pending, "loss": 0.0, "correct": 0, "seen": 0}
            loss_sum = torch.tensor(pending["loss"], device=run.device)
            correct_sum = torch.tensor(int(pending["correct"]), device=run.device, dtype=torch.long)
            seen, start, interrupted = int(pending["seen"]), device_clock(run.device) - pending["seconds"], False
            at_fold = True  # no batch since the last fold (or the epoch's start): the same on every process
            compiled = None  # (seconds, images) of the step that compiled the model, in the epoch that has it
            accumulate = cfg.accumulate  # batches per optimizer step
            run.model.train()
            try:
                while state.batch_in_epoch < run.batches_per_epoch:
                    # A stop signal is honoured before the next optimizer step's first batch (a run stops
                    # with no gradients half summed); the sums since the last fold are kept in the state, so
                    # a resumed run adds the same numbers in the same order as one never stopped. Several
                    # processes check at the folds only (agreeing on the step to stop at takes an all-reduce).
                    micro = state.batch_in_epoch % accumulate
                    if micro == 0 and (at_fold or not run.dist.enabled) and should_stop(trainer):
                        interrupted = True
                        break
                    images, y, idx = next(batches)
                    # A streamed batch whose images were all unreadable (and skipped) is empty. Alone, it is
                    # passed over; under --nproc it still takes its step, a zero-weighted one, so that its
                    # backward joins the gradient all-reduce the other processes make (they would wait forever).
                    if len(y) or run.dist.enabled:
                        x, targets, mix = training_batch(run, images, idx)
                        lr = set_lr(run, state.step)
                        began = device_clock(run.device) if compiling else 0.0  # (a sync on that path alone, once)
                        loss, correct = trainer.train_step(x, y, targets, mix, micro)
                        if compiling:
                            compiled, compiling = (device_clock(run.device) - began, len(y)), False
                        loss_sum += loss * len(y)
                        correct_sum += correct
                        seen += len(y)
                    elif micro == accumulate - 1 and accumulate > 1 and has_gradients(run):
                        optimizer_step(run)  # the group's earlier batches still step (none: no step, as the
                        # fp16 scaler refuses a step that recorded no gradients)
                    state.batch_in_epoch += 1
                    at_fold = False
                    if state.batch_in_epoch % accumulate == 0:
                        state.step += 1
                    if state.batch_in_epoch % (10 * accumulate) == 0 or state.batch_in_epoch == run.batches_per_epoch:
                        now = device_clock(run.device)  # the queued steps are done: they count in full
                        # Summed over the ranks; the seconds averaged, so that every rank sees the same
                        # clock (a time budget must stop all of them after the same epoch).
                        loss, correct, count, seconds = run.dist.sum(loss_sum.item(), correct_sum.item(), seen,
                                                                     now - start)
                        state.fold(loss, correct, count, seconds / run.dist.world_size, lr, run.batches_per_epoch)
                        loss_sum.zero_()
                        correct_sum.zero_()
                        seen, start, at_fold = 0, time.perf_counter(), True
                        check_finite_loss(run, state)
                        show_progress(bar, state, lr)
            finally:
                batches.close()
                if bar is not None:
                    bar.close()
            state.pending = {"loss": loss_sum.item(), "correct": int(correct_sum.item()), "seen": seen,
                             "seconds": time.perf_counter() - start} if interrupted else no_partial()
            if not interrupted and not state.partial["seen"]:  # (summed over the processes)
                raise no_image_read(run, "training")
            if interrupted:
                trainer.save("last.pt")
                raise TrainingInterrupted(
                    f"stopped by {signal_name(trainer._stop_signal)} in epoch {state.epoch + 1}; state saved to "
                    f"{run.run_dir / 'last.pt'}; continue with: {resume_command(run)}", trainer._stop_signal)

            # ----- evaluation, the epoch's row, checkpoints and metrics
            eval_start = device_clock(run.device)
            test = evaluate_run(run, run.ema.module if run.ema is not None else run.model)
            check_finite_loss(run, state, test["loss"])  # (the epoch's last steps are in no training loss)
            now = device_clock(run.device)
            state.wall_seconds += state.partial["seconds"]
            row, speed = epoch_row(run, state, test, now - eval_start, now, compiled)
            improved = state.end_epoch(row, cfg.min_delta, cfg.monitor)
            # last.pt last: it is what --resume trusts, so a run killed between these writes redoes the epoch
            # and rewrites best.pt and the metrics, rather than keeping a best.pt and metrics of the epoch before
            if improved:
                trainer.save("best.pt")
            report_epoch(run, state, row, speed, curves, since)
            trainer.save("last.pt")

            # ----- early stopping
            if cfg.patience is not None and state.epochs_since_best >= cfg.patience:
                stopped_early = state.epoch < cfg.epochs
                if stopped_early:
                    log.info("early stop: %s", no_gain(cfg.monitor, cfg.min_delta, cfg.patience,
                                                       scored_split(run.data)))
                break
    if should_stop(trainer):  # (a signal after the last step: in its evaluation, checkpoints or last curves, recorded
        # by stop_signals; before, passed over: a comparison trained its next model, an experiment its next arm, and
        # the command ended 0)
        finish = (f"; score the test split it kept unseen with: {resume_command(run)}"
                  if run.data.unseen_test is not None else "")
        raise TrainingInterrupted(f"stopped by {signal_name(trainer._stop_signal)} after its last epoch; every "
                                  f"epoch is saved in {run.run_dir}{finish}", trainer._stop_signal)
    if run.tensorboard is not None:
        run.tensorboard.close()
    if since == "resuming" and run.dist.is_main and run.run_dir is not None:  # (a new best.pt: exports now stale)
        say_made_before_best(run.run_dir)
    last = state.history[-1] if state.history else {"test_acc": float("nan")}
    return TrainResult(run.run_dir, state.history, state.best_acc, state.best_epoch, last["test_acc"],
                       stopped_early)


def scored_split(data: Any) -> str:
    """What each epoch of a run on `data` is scored on: "validation" images, its test split kept unseen (a folder's
    val/ beside its test/, or those --val-fraction held out of the training split: `LabelledImages.with_validation`),
    else "test" images (the data's test split, a folder's val/ without a test/, or what --val-fraction held out of a
    folder of one split)."""
    return "validation" if getattr(data, "unseen_test", None) is not None else "test"


def chosen_on(data: Any) -> str:
    """What the best epoch's line says of it (train, finetune, the demos): best.pt and --patience judge on the images
    each epoch is scored on, so its figure is no unseen test's."""
    return f"best.pt, chosen on these {scored_split(data)} images"


CHOSEN = chosen_on(None)


def no_gain(monitor: str, min_delta: float, epochs: int, judged: str = "test") -> str:
    """What stopped a run early: `epochs` epochs without a gain of `monitor` (of more than --min-delta), judged on
    the `judged` images (`scored_split`'s)."""
    gain = f"gained no more than `min_delta` {min_delta:g}" if min_delta else "did not improve"
    return f"{monitor} {gain} for {epochs} epoch{'s' if epochs != 1 else ''} (judged on the {judged} images)"


def check_finite_loss(run: Run, state: RunState, test_loss: float | None = None) -> None:
    """NonFiniteLoss once the training loss (or the epoch's `test_loss`) is NaN or inf, naming the last good
    checkpoint; a run that saved none leaves no config.json behind, so that the same command with a lower --lr may
    start again there. Before the epoch's checkpoints: a model whose outputs are not numbers is never best.pt."""
    loss = state.partial["loss"] if test_loss is None else test_loss
    if math.isfinite(loss):
        return
    saved = (run.run_dir / "last.pt").exists()
    if not saved and run.dist.is_main:
        forget_unsaved_run(run.run_dir)
    what = f"the training loss became {loss} at step {state.step} (epoch {state.epoch + 1})" if test_loss is None \
        else f"the test loss became {loss} after epoch {state.epoch + 1} (the weights diverged in its last steps)"
    raise NonFiniteLoss(
        f"{what}; "
        f"lower `lr` (now {run.config.base_lr:g}) or add `clip_grad`; "
        + (f"{run.run_dir / 'last.pt'} holds the last good state (epoch {state.epoch})"
           if saved else f"nothing was saved, so {run.run_dir} can take the new run"))


# ----- the step ------------------------------------------------------------------------------------
def train_step(run: Run, x: torch.Tensor, y: torch.Tensor, targets: dict[str, torch.Tensor] | None = None,
               mix: Mix | None = None, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's forward and backward, and after the last batch of an optimizer step's --accumulate
    (`micro` counts them from 0) the optimizer step; the batch's loss and number of correct main
    predictions (on the device). A mixed batch (`mix`) is scored against each image's dominant label."""
    accumulate = run.config.accumulate
    # Under DDP, the gradients are all-reduced once a step: after its last batch's backward.
    no_sync = getattr(run.forward_model, "no_sync", None) if micro < accumulate - 1 else None
    if run.config.compile and run.config.compile_mode in CUDA_GRAPH_MODES:
        # A new step: the graphs' outputs of the last one (read already) may be overwritten.
        torch.compiler.cudagraph_mark_step_begin()
    with no_sync() if no_sync is not None else contextlib.nullcontext():
        with autocast(run.device, run.amp_dtype):
            outputs = run.forward_model(x)
        loss = weighted_loss(outputs, y, targets, run.loss_weights, run.config.label_smoothing, mix,
                             getattr(run.model, "task_classes", {})) if len(y) \
            else sum(out.float().sum() for out in outputs.values()) * 0.0  # (an empty batch: zero gradients)
        share = loss
        skipping = run.config.skip_bad_images and isinstance(run.data, StreamingImageData)
        if accumulate > 1 or (run.dist.enabled and skipping):
            # The mean over the step's images, each image alike, as one batch of them gives it: the batch adds
            # its sum over its images (times the processes, whose gradients DDP averages), and the step's image
            # count is divided out when it is taken. Streamed images skipped as unreadable leave batches (and
            # ranks) unequal; without them every batch holds as many images on every rank.
            images: float | torch.Tensor = float(len(y) * run.dist.world_size)
            if run.dist.enabled and skipping:  # (an all-reduce on the device: no host wait)
                images = run.dist.sum_on_device(torch.full((), float(len(y)), device=run.device))
            run.step_images = run.step_images + images
            share = loss * (len(y) * run.dist.world_size)
        run.scaler.scale(share).backward()
    if micro == accumulate - 1:
        optimizer_step(run)
    scored = y if mix is None else mix.dominant(y)
    correct = (outputs["main"].detach().argmax(1) == scored).sum()
    return loss.detach(), correct


def optimizer_step(run: Run) -> None:
    """The optimizer step on the summed gradients (divided by the step's images where its batches added their
    sums: `train_step`; clipped if asked), and the EMA's update."""
    if torch.is_tensor(run.step_images) or run.step_images:  # (a tensor: counted on the device, maybe 0)
        count = run.step_images.clamp_min(1.0) if torch.is_tensor(run.step_images) else run.step_images
        grads = [p.grad for group in run.optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch._foreach_div_(grads, count)
        run.step_images = 0.0
    if run.config.clip_grad:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_grad)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    # Cleared after the step, not before a group's first batch: a group whose first batches were empty (a
    # streamed batch of unreadable images) must not add onto the last step's gradients.
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.model)


def has_gradients(run: Run) -> bool:
    return any(p.grad is not None for group in run.optimizer.param_groups for p in group["params"])


def weighted_loss(outputs: dict[str, torch.Tensor], y: torch.Tensor, targets: dict[str, torch.Tensor] | None,
                  weights: dict[str, float], smoothing: float, mix: Mix | None = None,
                  task_heads: Collection[str] = ()) -> torch.Tensor:
    """Weighted sum of each output's cross-entropy against its own target, else (an auxiliary head's) the labels;
    a head of `task_heads` without its own is an error (`output_target`). The mean squared error against a target
    of numbers (a labels CSV's standardized numeric column); of a mixed batch, each image's two targets weighted
    by its mixing weight."""
    targets = targets or {}

    def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.is_floating_point():
            return F.mse_loss(logits.float().squeeze(1), target.float())
        if mix is not None:
            return mix.loss(logits.float(), target, smoothing)
        return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)

    loss = weights["main"] * ce(outputs["main"], y)
    for name, logits in outputs.items():
        if name != "main":
            loss = loss + weights[name] * ce(logits, output_target(name, y, targets, task_heads))
    return loss


def training_batch(run: Run, images: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                             Mix | None]:
    """A batch as a training step takes it (`fit` and the lr range test alike): augmented and normalized on the
    device, each extra output's targets (by the images' indices), then mixed (mixup/CutMix) if the run mixes."""
    x = run.transform(images, train=True, generator=run.aug_generator)
    targets = {name: t[idx] for name, t in run.train_targets.items()}
    mix = None
    if run.mixing.enabled:
        x, mix = mix_batch(x, run.mixing, run.aug_generator)
    return x, targets, mix


def set_lr(run: Run, step: int) -> float:
    """The scheduled learning rate of `step`, set in every optimizer group (`apply_lr`)."""
    lr = run.config.base_lr * lr_factor(step, run.total_steps, run.config.schedule, run.warmup_steps,
                                        warmup_mode=run.config.warmup_mode)
    apply_lr(run.optimizer, lr)
    return lr


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """`lr` in every group of `optimizer`, times the group's `lr_scale` (a fine-tuned backbone's lower rate)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


# ----- the epoch's end -----------------------------------------------------------------------------
def epoch_row(run: Run, state: RunState, test: dict[str, Any], eval_seconds: float, now: float,
              compiled: tuple[float, int] | None = None) -> tuple[dict[str, Any], str]:
    """metrics.csv's row of the epoch just trained (state.partial holds its sums) and what its img/s covers: with
    --compile, the steps after the one that compiled the model (`compiled`: its seconds and images), if any."""
    p = state.partial
    # Every rank compiled at the same step: its seconds averaged over them, as p["seconds"], its images summed.
    seconds, images = run.dist.sum(compiled[0] / run.dist.world_size, compiled[1]) if compiled else (0.0, 0)
    excluded = 0 < images < p["seen"] and seconds < p["seconds"]  # (other steps to measure img/s by)
    speed = "img/s after compiling" if excluded else "img/s incl. compile" if compiled else "img/s"
    row = {
        "epoch": state.epoch + 1, "step": state.step,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": p["loss"] / max(1, p["seen"]), "train_acc": p["correct"] / max(1, p["seen"]),
        "test_loss": test["loss"], "test_acc": test["acc"],
        # What each time covers: train_seconds the training steps of this epoch (data waits
        # included, the device synchronized); eval_seconds the test-set evaluation; epoch_seconds
        # both; wall_seconds the training steps of all epochs so far (what --budget-seconds
        # counts); elapsed_seconds this command's time since the trainer began (data loading,
        # checkpoints and plots of earlier epochs included; a resumed run counts from its restart, while the
        # train_seconds of the epoch it resumed in include the steps before the stop).
        "train_seconds": p["seconds"], "eval_seconds": eval_seconds, "epoch_seconds": p["seconds"] + eval_seconds,
        "images_per_second": (p["seen"] - images * excluded) / max(p["seconds"] - seconds * excluded, 1e-9),
        "wall_seconds": state.wall_seconds, "elapsed_seconds": now - run.started,
        **({"compile_seconds": seconds} if run.config.compile else {}),  # (in train_seconds; 0: none this epoch)
    }
    # Each scored output's accuracy, or the mean absolute error of an output of numbers (a labels CSV's).
    row.update({f"test_{key}": value for key, value in test.items() if key.startswith(("acc_", "mae_"))})
    return row, speed


def report_epoch(run: Run, state: RunState, row: dict[str, Any], speed: str, curves: Curves,
                 since: str = "start") -> None:
    """metrics.csv/json, steps.csv and curves.png (rank 0; the curves when their drawing is cheap beside the time
    since the last: `Curves`), TensorBoard, and the epoch's log line (its elapsed time "since start", or on a
    resumed run "since resuming")."""
    if run.dist.is_main:
        write_metrics(run.run_dir, state.history, state.step_history)
        curves.after_epoch(state.history)
    if run.tensorboard is not None:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_second"):
            run.tensorboard.add_scalar(key, row[key], row["epoch"])
        run.tensorboard.flush()
    compiled = f" incl. compile {row['compile_seconds']:.1f}s" if row.get("compile_seconds") else ""
    scored = "val" if scored_split(run.data) == "validation" else "test"  # (metrics.csv's test_* columns hold it)
    log.info("epoch %d/%d  train loss %.4f acc %.4f  %s loss %.4f acc %.4f  %.0f %s  %.1fs "
             "(train %.1fs%s + %s %.1fs; %.1fs since %s)",
             row["epoch"], run.config.epochs, row["train_loss"], row["train_acc"], scored, row["test_loss"],
             row["test_acc"], row["images_per_second"], speed, row["epoch_seconds"], row["train_seconds"],
             compiled, scored, row["eval_seconds"], row["elapsed_seconds"], since)
    if run.scored_outputs:
        log.info("  %s per output: %s", scored, ", ".join(f"{k[5:].replace('_', ' ', 1)} {v:.4f}"
                                                        for k, v in row.items()
                                                        if k.startswith(("test_acc_", "test_mae_"))))


__all__ = ["CHOSEN", "NonFiniteLoss", "TrainResult", "Trainable", "TrainingInterrupted", "apply_lr", "chosen_on", "fit",
           "no_gain", "optimizer_step", "scored_split", "train_step", "training_batch", "weighted_loss"]
