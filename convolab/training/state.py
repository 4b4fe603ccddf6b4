"""A run's progress as one dataclass, and the checkpoint: the run's parts and its progress in one flat dict.

`RunState` serializes itself field by field (`dataclasses.fields`), so a new field is saved, resumed and
read back from older checkpoints (which lack it: its default) without a key written twice. The
checkpoint keeps its flat keys (`epoch`, `history`, `model`, `image_size`...): readers of last.pt and
best.pt (`load_trained_model`, compare's results, export) read them by name.
"""
from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

import torch

from .build import Run
from .checkpoint import check_layout, layout_fields, weights_mismatch

log = logging.getLogger("convolab")


def no_partial() -> dict[str, float]:
    """The sums of the epoch's steps so far: loss (summed over images), correct, images, seconds."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


@dataclass
class RunState:
    """Progress through a run: everything the loop changes, all of it in the checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0
    partial: dict[str, float] = field(default_factory=no_partial)  # folded every 10 steps
    # The sums of the steps since the last fold, when a run stopped between two folds: the resumed run
    # goes on adding to them, so its sums are those of a run never stopped.
    pending: dict[str, float] = field(default_factory=no_partial)
    history: list[dict[str, Any]] = field(default_factory=list, metadata={"json": True})  # a row per epoch
    # Training loss and accuracy every 10 steps (He et al. plot training error by iteration).
    step_history: list[dict[str, Any]] = field(default_factory=list, metadata={"json": True})
    best_acc: float = -1.0  # the test accuracy of best.pt's epoch (with --monitor test_acc: the highest)
    best_score: float = math.nan  # --monitor's figure at best.pt's epoch (nan: no epoch yet)
    best_epoch: int = 0
    # --monitor's figure at the last epoch that gained more than --min-delta, and the epochs since it
    # (what --patience counts; best.pt follows every new best, however small)
    patience_score: float = math.nan
    epochs_since_best: int = 0
    wall_seconds: float = 0.0  # the training steps of all epochs so far (what --budget-seconds counts)

    def state_dict(self) -> dict[str, Any]:
        """Each field under its name; lists of rows as JSON text (a checkpoint holds tensors, numbers, strings)."""
        return {f.name: _encode(f, getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> RunState:
        """The fields found in `state` (e.g. a checkpoint); a field an older checkpoint lacks keeps its default."""
        return cls(**{f.name: _decode(f, state[f.name]) for f in fields(cls) if f.name in state})

    def fold(self, loss: float, correct: float, seen: float, seconds: float, lr: float, steps_per_epoch: int) -> None:
        """Add the last steps' sums (loss summed over their `seen` images) to the epoch's partial sums,
        and their row to the step history."""
        self.partial["loss"] += loss
        self.partial["correct"] += round(correct)
        self.partial["seen"] += round(seen)
        self.partial["seconds"] += seconds
        if seen:
            self.step_history.append({
                "step": self.step, "epoch": self.epoch + self.batch_in_epoch / steps_per_epoch, "lr": lr,
                "train_loss": loss / seen, "train_acc": correct / seen, "train_error": 1 - correct / seen,
                "images": round(seen)})

    def end_epoch(self, row: dict[str, Any], min_delta: float, monitor: str = "test_acc") -> bool:
        """Record the epoch's row and start the next epoch; True if its `monitor` figure is a new best (higher
        accuracy, or lower loss or mean absolute error): best.pt's epoch. Early stopping counts the epochs
        since the figure last gained more than `min_delta`, as Lightning's EarlyStopping does beside a
        ModelCheckpoint that keeps every new best."""
        self.history.append(row)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.partial = no_partial()
        value = row[monitor]
        lower = monitor == "test_loss" or monitor.startswith("test_mae_")
        best = self.best_acc if monitor == "test_acc" else self.best_score  # (checkpoints before --monitor: best_acc)
        first = self.best_epoch == 0  # no epoch before with a figure: any figure is a gain
        # (checkpoints before the two were told apart keep no reference of their own: best.pt's figure)
        reference = best if math.isnan(self.patience_score) else self.patience_score
        improved = not math.isnan(value) if first else _better(value, best, 0.0, lower)
        gained = not math.isnan(value) if first else _better(value, reference, min_delta, lower)
        if improved:
            self.best_acc, self.best_score, self.best_epoch = row["test_acc"], value, row["epoch"]
        if gained:
            self.patience_score, self.epochs_since_best = value, 0
        else:
            self.epochs_since_best += 1
        return improved


def _better(value: float, than: float, by: float, lower: bool) -> bool:
    """Whether `value` beats `than` by more than `by` (lower is better where `lower`)."""
    return value < than - by if lower else value > than + by


def _encode(f: Field, value: Any) -> Any:
    return json.dumps(value) if f.metadata.get("json") else copy.copy(value)


def _decode(f: Field, value: Any) -> Any:
    if f.metadata.get("json"):
        return json.loads(value)
    kind = type(f.default_factory() if f.default is MISSING else f.default)  # type: ignore[misc]
    return kind(value)


# ----- the checkpoint ------------------------------------------------------------------------------
def checkpoint_state(run: Run, state: RunState) -> dict[str, Any]:
    """Everything a resumed run, `convolab predict/evaluate/export` and a fine-tuning run need: the
    model and how its input is made, the optimizer, the progress, and every random stream."""
    model = run.model  # (never wrapped: DDP and torch.compile wrap run.forward_model)
    name = getattr(model, "model_name", "")  # ("": a model given of no registered name, not config.model)
    # (a model that records what rebuilds it, e.g. a labels CSV's `multitask`, its own options)
    options = dict(getattr(model, "model_options", None) or run.config.model_options)
    saved = {
        "model": model.state_dict(),
        "model_name": name,
        "model_options": options,
        **layout_fields(name, options),  # the weights' layout revision: a later one refuses this file
        "num_classes": run.data.num_classes,
        "in_chans": getattr(model, "in_chans", run.data.image_shape[0]),
        "classes": list(run.data.classes),
        "image_size": list(run.image_size),
        "preprocess": run.batches.preprocess,  # files squashed to the size, or (streamed) their centre crop
        # (streamed: the mode every file was decoded in, "L" or "RGB", the data's, not the model's channels: a grey
        # stream trains a 3-channel model on grey crops; `predict` decodes its crops so)
        "crop_mode": getattr(run.batches.data, "mode", "") if run.batches.preprocess == "center-crop" else "",
        "mean": list(run.mean),
        "std": list(run.std),
        "data": run.config.data,
        **data_images(run.data),  # (evaluate and --resume warn when they have changed)
        "config": json.dumps(run.config.to_record()),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        **state.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_aug": run.aug_generator.get_state(),
    }
    if run.device.type == "cuda":
        saved["rng_cuda"] = torch.cuda.get_rng_state(run.device)
    if hasattr(run.data, "record"):  # a labels CSV's targets and inputs (numbers: their mean and std)
        saved["table"] = run.data.record()
    if run.ema is not None:
        saved["ema"] = run.ema.module.state_dict()
    if run.dist.enabled:  # every rank's random streams (a collective: all ranks call checkpoint_state)
        saved["rng_ranks"] = run.dist.gather(_rng_state(run))
    return saved


def _rng_state(run: Run) -> dict[str, torch.Tensor]:
    rng = {"cpu": torch.get_rng_state(), "aug": run.aug_generator.get_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    return rng


COUNTERS = ("epoch", "step", "batch_in_epoch", "best_epoch", "epochs_since_best")  # whole numbers >= 0
SUMS = tuple(no_partial())


def data_images(data: Any) -> dict[str, Any]:
    """What a checkpoint records of its run's images: "data_images", the data's own training and test splits (the
    training images held out to validate on by --val-fraction counted in the first, and in "validation_images")."""
    # (and each class's images trained and scored on: a move from one class to another keeps the counts, not the
    # draw of the validation images)
    classes = {"class_images": [torch.bincount(split.labels, minlength=data.num_classes).tolist()
                                for split in (data.train, data.test)]}
    if data.unseen_test is None:
        return {"data_images": [len(data.train), len(data.test)], **classes}
    return {"data_images": [len(data.train) + len(data.test), len(data.unseen_test)],
            "validation_images": len(data.test), **classes}


def images_then_and_now(saved: dict[str, Any], data: Any) -> tuple[list[int], list[int]] | None:
    """The images a checkpoint's run trained and was scored on, as [training, scored] counts (from its "data_images"
    and "validation_images"), and those of `data` now; None for a checkpoint that records none. (A run on a folder's
    train/, val/ and test/ from before test/ was kept unseen recorded train/ and val/: the same two.)"""
    recorded, validation = saved.get("data_images"), saved.get("validation_images") or 0
    if not recorded:
        return None
    then = [recorded[0] - validation, validation] if validation else list(recorded)
    return then, [len(data.train), len(data.test)]


def same_classes_of_images(saved: dict[str, Any], data: Any) -> bool:
    """Whether each class holds the images it held when the checkpoint's run trained (true where it records none)."""
    then = saved.get("class_images")
    return then is None or then == data_images(data)["class_images"]


def resume_problem(run: Run, saved: dict[str, Any]) -> str | None:
    """What in a checkpoint does not fit the run it would resume (weights, optimizer, random streams, progress),
    or None: checked before any of it is loaded, as a file edited by hand or damaged fails deep in torch."""
    model = run.model  # (never wrapped: DDP and torch.compile wrap run.forward_model)
    for key in ("model", "ema") if run.ema is not None and "ema" in saved else ("model",):
        weights = saved.get(key)
        if not isinstance(weights, dict) or not all(torch.is_tensor(w) for w in weights.values()):
            return f"its {key!r} entry is not a set of weights"
        if (problem := weights_mismatch(model, weights)) is not None:
            return f"its {key!r} weights do not fit {getattr(model, 'model_name', '') or 'the model'}: {problem}"
    if (problem := _optimizer_problem(run, saved.get("optimizer"))) is not None:
        return problem
    for key in ("rng_cpu", "rng_aug"):  # (rng_aug of another size: a GPU's stream, which set_aug_state restarts)
        value = saved.get(key)
        if not torch.is_tensor(value) or value.dtype != torch.uint8:
            return f"its {key!r} is not a random generator's state"
    if (size := saved["rng_cpu"].numel()) != torch.get_rng_state().numel():
        return f"its 'rng_cpu' holds {size} bytes, not a CPU generator's {torch.get_rng_state().numel()}"
    return _progress_problem(run, saved)


def _optimizer_problem(run: Run, saved: Any) -> str | None:
    own = run.optimizer.state_dict()["param_groups"]
    groups = saved.get("param_groups") if isinstance(saved, dict) and isinstance(saved.get("state"), dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):
        return "its 'optimizer' entry is not an optimizer's state"
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in own]:
        return (f"its optimizer has {len(groups)} parameter groups of {[len(g['params']) for g in groups]} parameters, "
                f"the run's {len(own)} of {[len(g['params']) for g in own]}")
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    shapes = dict(zip([i for g in groups for i in g["params"]], [tuple(p.shape) for p in params]))
    for ident, values in saved["state"].items():
        if ident not in shapes or not isinstance(values, dict):
            return f"its optimizer holds a state for parameter {ident!r}, which the run has not"
        for name, value in values.items():  # (moments and buffers: the parameter's shape; steps: one number)
            if torch.is_tensor(value) and value.dim() and tuple(value.shape) != shapes[ident]:
                return (f"its optimizer's {name} of parameter {ident} is {tuple(value.shape)}, the parameter "
                        f"{shapes[ident]}")
    return None


def _progress_problem(run: Run, saved: dict[str, Any]) -> str | None:
    for f in fields(RunState):
        if f.name not in saved:
            continue  # (an older checkpoint: the default)
        value = saved[f.name]
        if f.name in COUNTERS and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"its {f.name} is {value!r}, not a whole number >= 0"
        if f.name in ("partial", "pending") and not (isinstance(value, dict) and set(value) == set(SUMS) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())):
            return f"its {f.name} is {value!r}, not the sums {', '.join(SUMS)}"
        if f.metadata.get("json"):
            try:
                rows = json.loads(value)
            except (TypeError, ValueError):
                return f"its {f.name} is not JSON text"
            if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                return f"its {f.name} is not a list of rows"
        if f.type == "float" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return f"its {f.name} is {value!r}, not a number"
    state = RunState.from_state_dict(saved)
    if len(state.history) != state.epoch:
        return f"its epoch is {state.epoch} but its history holds {len(state.history)} epochs"
    if state.best_epoch > state.epoch:
        return f"its best_epoch {state.best_epoch} is later than its epoch {state.epoch}"
    if state.batch_in_epoch >= run.batches_per_epoch:
        return (f"its batch_in_epoch is {state.batch_in_epoch}, but an epoch of this run has "
                f"{run.batches_per_epoch} batches")
    steps = state.epoch * run.steps_per_epoch + state.batch_in_epoch // run.config.accumulate
    if "step" in saved and state.step != steps:  # (the schedule's place: an edited one trains another schedule)
        return (f"its step is {state.step}, but epoch {state.epoch} and batch {state.batch_in_epoch} of this run "
                f"are step {steps}")
    if not (math.isfinite(state.best_acc) and (state.best_acc == -1.0 or 0.0 <= state.best_acc <= 1.0)):
        return f"its best_acc is {state.best_acc!r}, not an accuracy"  # (NaN: no later epoch would beat it)
    if state.step and not saved["optimizer"]["state"] and _keeps_state(run):
        return "its optimizer holds no state (moments, momentum) after steps that make one"
    return None


def _keeps_state(run: Run) -> bool:
    """Whether the run's optimizer keeps a state of each parameter once it has stepped (Adam's moments, SGD's
    momentum): a checkpoint past its first step without one was emptied."""
    return run.config.optimizer != "sgd" or bool(run.config.momentum)


def restore_checkpoint(run: Run, saved: dict[str, Any]) -> RunState:
    """Load `saved` into the run's model, optimizer, scaler, EMA and random streams; its progress. A record
    of an older layout revision is refused (`Trainer.resume` refused it already, naming last.pt)."""
    check_layout(saved, saved.get("source", "the checkpoint"))
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scaler.load_state_dict(saved["scaler"])
    state = RunState.from_state_dict(saved)
    torch.set_rng_state(saved["rng_cpu"])
    set_aug_state(run, saved["rng_aug"], state.step)
    if "rng_cuda" in saved and run.device.type == "cuda":
        torch.cuda.set_rng_state(saved["rng_cuda"], run.device)
    if run.ema is not None and "ema" in saved:
        run.ema.module.load_state_dict(saved["ema"])
    if run.dist.enabled:
        ranks = saved.get("rng_ranks")
        rank = run.dist.rank
        if ranks is not None and len(ranks) == run.dist.world_size:
            torch.set_rng_state(ranks[rank]["cpu"])
            set_aug_state(run, ranks[rank]["aug"], state.step)
            if "cuda" in ranks[rank] and run.device.type == "cuda":
                torch.cuda.set_rng_state(ranks[rank]["cuda"], run.device)
        elif rank:  # saved by another number of processes: fresh streams for this rank
            torch.manual_seed(run.config.seed + rank + state.step * 1_000_003)
            run.aug_generator.manual_seed(fresh_aug_seed(run, state.step))
    return state


def fresh_aug_seed(run: Run, step: int) -> int:
    """The seed of a rank's augmentation stream started afresh at `step` (its saved state unusable)."""
    return run.config.seed + 1 + run.dist.rank * 1_000_003 + step


def set_aug_state(run: Run, saved: torch.Tensor, step: int) -> None:
    """The augmentation stream where it stopped; a run saved on a device of another kind (a GPU run resumed
    on the CPU: a CUDA generator's state does not fit a CPU generator) gets a fresh stream, seeded by its
    step, and says so: the run goes on, its augmentations no longer those of a run never stopped."""
    try:
        run.aug_generator.set_state(saved)
    except RuntimeError:
        run.aug_generator.manual_seed(fresh_aug_seed(run, step))
        log.warning("the augmentation stream was saved on a device of another kind; it restarts, seeded by the "
                    "step, so the resumed run is no longer exactly one never stopped")


__all__ = ["RunState", "checkpoint_state", "data_images", "images_then_and_now", "restore_checkpoint",
           "resume_problem", "same_classes_of_images", "set_aug_state"]
