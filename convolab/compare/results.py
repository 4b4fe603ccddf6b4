"""One row of a comparison, read from a run folder: config.json, metrics.csv and last.pt's metadata."""
from __future__ import annotations

import json
import logging
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from ..analysis import count_macs, count_params
from ..errors import CheckpointError, ConfigError, UnknownModelError
from ..models import create_model
from ..training import TrainConfig, load_checkpoint
from ..training.final_test import TEST_FILE
from ..training.metrics import read_metrics
from ..training.rundir import stop_reason

OK, INTERRUPTED, NOT_RUN = "ok", "interrupted", "not run"
log = logging.getLogger("convolab")

INT_COLUMNS = ("epoch", "step")


@dataclass
class ModelResult:
    """What the report shows of one model; numbers are None where the run has none (yet)."""

    model: str
    run_dir: str
    status: str = OK  # "ok", "interrupted", "not run" or "failed: <one-line reason>"
    data: str | None = None
    params: int | None = None
    macs: int | None = None
    input_size: list[int] | None = None  # C, H, W the model was trained at
    lr: float | None = None
    device: str | None = None
    threads: int | None = None  # torch's threads the run trained with (runs of older versions: not recorded)
    processes: int | None = None  # the processes it trained on (--nproc; runs of older versions: not recorded)
    epochs: int = 0  # completed
    planned_epochs: int | None = None
    images_per_second: float | None = None  # mean of the epochs after the first (warm-up excluded)
    wall_seconds: float | None = None  # training time, evaluation excluded (the engine's wall_seconds)
    best_acc: float | None = None
    best_epoch: int | None = None
    final_acc: float | None = None
    # best.pt's accuracy on the test split a run validating on --val-fraction's held-out images kept unseen
    # (its test.json), where best_acc and final_acc are the validation images'; None for other runs
    unseen_test_acc: float | None = None
    validated: bool = False  # its epochs were scored on validation images held out of its training split
    options: dict[str, Any] = field(default_factory=dict)  # the run's TrainConfig, less model and output
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run finished (status "ok"), not interrupted, failed or not run."""
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """Every field, history included, as a dict for JSON."""
        return asdict(self)


def run_options(config: TrainConfig) -> dict[str, Any]:
    """The options a comparison holds equal (everything but the model and where its run goes)."""
    options = config.to_dict()
    for key in ("model", "output", "progress"):
        options.pop(key)
    return options


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv, with epoch and step as integers; [] when no epoch has finished."""
    if not (run_dir / "metrics.csv").is_file():
        return []
    return _typed(read_metrics(run_dir))


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """History rows with epoch and step as integers."""
    return [{k: int(v) if k in INT_COLUMNS else v for k, v in row.items()} for row in rows]


def mean_images_per_second(history: list[dict[str, float]]) -> float | None:
    """Mean over the epochs after the first, whose speed includes warm-up; the first if it is alone."""
    speeds = [row["images_per_second"] for row in history]
    if not speeds:
        return None
    later = speeds[1:] or speeds
    return sum(later) / len(later)


def run_is_complete(config: TrainConfig, state: dict[str, Any] | None) -> bool:
    """True when the run stopped by itself: all epochs, early stopping or its time budget."""
    if state is None or int(state["batch_in_epoch"]) > 0:
        return False
    epoch = int(state["epoch"])
    if epoch >= config.epochs:
        return True
    if config.patience is not None and int(state["epochs_since_best"]) >= config.patience:
        return True
    return config.budget_seconds is not None and float(state["wall_seconds"]) >= config.budget_seconds


def read_last_state(run_dir: Path) -> dict[str, Any] | None:
    """last.pt of a run, or None if it has none (no epoch finished and no interruption saved)."""
    path = run_dir / "last.pt"
    return load_checkpoint(path) if path.is_file() else None


def model_cost(state: dict[str, Any]) -> tuple[int, int, list[int]]:
    """Parameters and MACs of the checkpoint's model at its training input size (built on the meta device)."""
    in_chans = int(state["in_chans"])
    height, width = (int(v) for v in state["image_size"])
    with torch.device("meta"):
        model = create_model(state["model_name"], num_classes=int(state["num_classes"]), in_chans=in_chans,
                             **dict(state["model_options"]))
    input_size = [in_chans, height, width]
    return count_params(model), count_macs(model, input_size), input_size


def checkpoint_history(run_dir: Path, state: dict[str, Any], history: list[dict[str, float]], finished: int
                       ) -> list[dict[str, float]]:
    """The rows of last.pt's own history, for a metrics.csv short of the epochs last.pt says finished (a run
    killed between writing the two); one line where last.pt lacks them too."""
    saved = state.get("history") or []
    saved = json.loads(saved) if isinstance(saved, str) else saved
    if len(saved) >= finished:
        log.warning("%s lacks the last %d epoch(s) that last.pt finished (stopped between the two writes); "
                    "reported from last.pt", run_dir / "metrics.csv", finished - len(history))
        return _typed(saved[:finished])
    rows = f"{len(history)} row{'s' if len(history) != 1 else ''}" if (run_dir / "metrics.csv").is_file() \
        else "missing"
    raise ConfigError(f"{run_dir / 'metrics.csv'} is damaged ({rows}, but last.pt says {finished} epoch"
                      f"{'s' if finished > 1 else ''} finished); restore it from a copy, or leave the run out or train "
                      "it again")


def read_run(run_dir: str | Path, status: str | None = None, label: str | None = None) -> ModelResult:
    """The row of the run in `run_dir`; `status` overrides the one inferred from its checkpoint."""
    run_dir = Path(run_dir)
    config = TrainConfig.from_run(run_dir)
    resolved = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("resolved", {})
    try:
        state = read_last_state(run_dir)
    except CheckpointError as err:
        raise ConfigError(f"run {run_dir} cannot be reported: {err}") from None
    history = read_history(run_dir)
    finished = int(state["epoch"]) if state is not None else 0  # the epochs last.pt says finished
    if len(history) < finished:  # an epoch writes its row right after last.pt: a stop in between leaves it out
        history = checkpoint_history(run_dir, state, history, finished)
    result = ModelResult(model=label or config.model or run_dir.name, run_dir=str(run_dir), data=config.data,
                         lr=resolved.get("lr"), device=resolved.get("device"),
                         threads=resolved.get("threads"), processes=resolved.get("processes"),
                         planned_epochs=config.epochs,
                         history=history, epochs=len(history), options=run_options(config))
    # (a run whose loss became NaN: failed, as `compare` said of it, not "interrupted", which a --resume would mend)
    failed = None if status or run_is_complete(config, state) else stop_reason(run_dir)
    result.status = status or (OK if run_is_complete(config, state) else f"failed: {failed}" if failed else INTERRUPTED)
    if state is not None:
        try:
            result.params, result.macs, result.input_size = model_cost(state)
        except UnknownModelError:  # (a model given to Trainer(config, model=...), of no registered name: no cost)
            result.input_size = [int(state["in_chans"]), *(int(v) for v in state["image_size"])]
    if history:
        accs = [row["test_acc"] for row in history]
        # best.pt's epoch, as the run's --monitor chose it (the highest accuracy by default)
        kept = int(state.get("best_epoch", 0)) if state is not None else 0
        rows = {row["epoch"]: row for row in history}
        if kept in rows:
            result.best_acc, result.best_epoch = rows[kept]["test_acc"], kept
        else:  # (a run whose last.pt predates its history)
            result.best_acc, result.best_epoch = max(accs), history[accs.index(max(accs))]["epoch"]
        result.final_acc = accs[-1]
        result.wall_seconds = history[-1]["wall_seconds"]
        result.images_per_second = mean_images_per_second(history)
    result.unseen_test_acc = unseen_test_acc(run_dir)
    result.validated = isinstance(resolved, dict) and bool(resolved.get("validation"))
    if isinstance(resolved, dict) and resolved.get("test_split") == "own" and not result.validated:
        result.options["val_fraction"] = None  # (it held nothing out: an older convolab's run given one, resumed)
    return result


def unseen_test_acc(run_dir: Path) -> float | None:
    """The top-1 accuracy of the run's test.json (`training.final_test`), or None: the run kept no test split
    unseen, or has not finished, or the file does not read as one."""
    try:
        value = json.loads((run_dir / TEST_FILE).read_text(encoding="utf-8")).get("top1")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def save_traceback(output: Path, run_name: str) -> Path:
    """The exception being handled, written whole to OUTPUT/failures/RUN.txt."""
    path = Path(output) / "failures" / f"{run_name.replace('/', '-')}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = traceback.format_exc()
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
