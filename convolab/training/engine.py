"""The training engine: data resident on the device, batches by indexing, augmentation per batch,
learning rate as a pure function of the step, full-state checkpoints that resume exactly.

`Trainer` is a thin facade over the parts: `build.build_run` makes the run from its config (`trainer.run`),
`state.RunState` holds its progress (`trainer.state`), `loop.fit` trains it, `state.checkpoint_state`
saves it. The run's parts and progress read as the trainer's attributes (`trainer.model`, `trainer.step`).
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import weakref
from pathlib import Path
from typing import Any

import torch

from .._atomic import RefusedWrite
from .._paths import user_path
from .._platform import logging_to_stderr
from ..data import absolute_source, read_from_here, relative_record
from ..data.base import LabelledImages
from ..errors import (
    CheckpointError,
    ConfigError,
    ConvolabError,
    DataError,
    DiskFullError,
    FieldError,
    on_the_command_line,
)
from ..models._modes import modes_kept
from .build import Run, build_run
from .checkpoint import load_checkpoint, recorded_model, save_checkpoint
from .config import FIELDS, TrainConfig, check_field_names
from .device import without_callers_autocast
from .distributed import launch_env
from .evaluation import evaluate
from .final_test import score_unseen_test
from .loop import NonFiniteLoss, TrainingInterrupted, TrainResult, fit, train_step
from .mixing import Mix
from .process import ProcessState, callers_kept
from .resume_checks import check_same_classes, check_same_images, check_same_run, given_model, resume_changes
from .run_names import forget_unfitted
from .rundir import (
    TEST_FILE,
    claim_run_dir,
    clear_stop,
    forget_check,
    forget_unsaved_run,
    is_own_model_run,
    record_stop,
    refuse_a_new_run_in,
    resume_call,
)
from .signals import stop_at_once, stopped_writing
from .state import RunState, checkpoint_state, restore_checkpoint, resume_problem

log = logging.getLogger("convolab")

_RUN_PARTS = frozenset(f.name for f in dataclasses.fields(Run))
_PROGRESS = frozenset(f.name for f in dataclasses.fields(RunState))


class Trainer:
    """Runs one training job described by a TrainConfig; `Trainer.resume(run_dir)` continues one. A new
    Trainer refuses an output folder that holds a run (as `convolab train --output` does): resume that one."""

    def __init__(self, config: TrainConfig, data: LabelledImages | None = None,
                 model: torch.nn.Module | None = None, *, _resuming: bool = False):
        # (`_resuming`: built by `Trainer.resume`, which claimed the folder of the run it continues)
        check_given(config, data, model)
        if not _resuming:  # (its paths recorded absolute, as the command records them: read from any folder later)
            config = dataclasses.replace(config, data=absolute_source(config.data), data_dir=config.data_dir and
                                         os.path.realpath(os.path.expanduser(config.data_dir)))
            config = recorded_data(config, data)
        own = model is not None and not getattr(model, "model_name", "")  # (a model of no registered name)
        if not _resuming and config.output and launch_env("RANK", 0) == 0:
            # before the data are read; checked again under the claim
            refuse_a_new_run_in(config.output, resume_call(config.output, own))
        # (the run's random streams, threads and dtype apart from the caller's: ProcessState)
        self._process = ProcessState(threads=config.threads)
        with self._process.applied():
            self.run = build_run(config, data, model)
        self._process.cudnn_benchmark = self.run.device.type == "cuda"
        self.state = RunState()
        self._stop_signal: int | None = None  # set by SIGINT/SIGTERM while fitting: stop at the next fold
        self._saved_epoch: int | None = None  # the epoch of the last.pt in the run folder (None: none saved)
        self._new_run, self._epochs_given = not _resuming, False  # (a new run's folder, checked at its first fit)
        self._claim = self._claim_folder(None if _resuming else resume_call(self.run.run_dir, own))
        # a default folder (runs/MODEL-DATA) goes with a Trainer never fitted: a notebook cell run again made -2, -3...
        self._unfitted = None if _resuming or self.run.config.output or not self.run.dist.is_main else \
            weakref.finalize(self, forget_unfitted, self.run.run_dir, self._claim)

    @property
    def _own_model(self) -> bool:
        """Whether the run trains a model of no registered name (config.json says so: config.model is not it)."""
        return not getattr(self.run.model, "model_name", "")

    def _claim_folder(self, new_run: str | None = None) -> Any:
        """This process's claim on the run folder (rank 0 writes it): one line if another command holds it,
        or, for a new run (`new_run`: the call that continues a run), if the folder holds a run."""
        argument = "`output`" if self.run.config.output else "the run folder"
        return claim_run_dir(self.run.run_dir, argument, new_run) if self.run.dist.is_main else None

    def __getattr__(self, name: str) -> Any:
        """The run's parts (`model`, `optimizer`, `data`...) and progress (`epoch`, `step`, `history`...)."""
        if name in _PROGRESS:
            return getattr(self.__dict__["state"], name)
        if name in _RUN_PARTS:
            return getattr(self.__dict__["run"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:  # (a REPL: which run, and how far it is)
        model = type(self.run.model).__name__ if self._own_model else self.config.model
        return (f"Trainer({model} on {self.config.data}, epoch {self.epoch} of {self.config.epochs}, "
                f"run folder {self.run.run_dir})")

    def __dir__(self) -> list[str]:  # (tab completion in IPython offers the run's parts and progress too)
        return sorted({*super().__dir__(), *_PROGRESS, *_RUN_PARTS})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PROGRESS:
            setattr(self.__dict__["state"], name, value)
        elif name in _RUN_PARTS:  # (trainer.model = other left the optimizer, the EMA and the forward model on
            # the old one: fit trained it while the checkpoints saved the new)
            raise AttributeError(f"Trainer.{name} is part of the run built from its config, and the parts made "
                                 f"from it would not follow a new value; build a new Trainer instead (model=, "
                                 f"data=, or a TrainConfig of the change)")
        else:
            super().__setattr__(name, value)

    # What the batch source holds: the labels on the device, the resident images, the stream's loader.
    @property
    def streaming(self) -> bool:
        """True when the images are streamed from their files by workers, False when resident on the device."""
        return self.run.batches.streamed

    @property
    def train_labels(self) -> torch.Tensor:
        """The training split's labels (int64 N), on the run's device."""
        return self.run.batches.train_labels

    @property
    def test_labels(self) -> torch.Tensor:
        """The test split's labels (int64 N), on the run's device."""
        return self.run.batches.test_labels

    @property
    def train_images(self) -> torch.Tensor | None:
        """The training images, uint8 N x C x H x W on the device; None when they are streamed."""
        return self.run.batches.train_images

    @property
    def test_images(self) -> torch.Tensor | None:
        """The test images, uint8 N x C x H x W on the device; None when they are streamed."""
        return self.run.batches.test_images

    @property
    def train_loader(self) -> torch.utils.data.DataLoader | None:
        """The DataLoader whose workers decode the streamed training images; None for resident data."""
        return self.run.batches.loader

    def fit(self) -> TrainResult:
        """Train to the configured number of epochs (or early stop, or the time budget); SIGINT/SIGTERM
        save and stop. With several processes this one then leaves the process group: after the others
        when the run ended or stopped (every rank stops at the same step: the stop flag and the loss are
        all-reduced), at once on an error of its own (the others may never reach a barrier)."""
        if self._unfitted is not None:  # (the folder is the run's now)
            self._unfitted.detach()
            self._unfitted = None
        if self._epochs_given and self.epoch >= self.config.epochs:  # (it trained nothing, and recorded N as the run's)
            raise FieldError("epochs", f"is {self.config.epochs} and {self.run.run_dir} has trained {self.epoch} "
                             f"epochs: the run is complete; give epochs=N with N > {self.epoch} to train it further")
        if self._claim is None or not self._claim.held:  # (released by an earlier fit)
            self._claim = self._claim_folder()
        if self.run.dist.is_main and self._new_run:  # another Trainer of this process, made for the same output
            # before this one's fit, shares its claim: its run, finished since, would be overwritten unsaid
            refuse_a_new_run_in(self.run.run_dir, resume_call(self.run.run_dir, self._own_model))
        self._new_run = False
        if self.run.dist.is_main:
            clear_stop(self.run.run_dir)  # (a run that failed, resumed: failed no more, or anew below)
        self._stop_signal = None  # (a Ctrl-C that stopped an earlier fit of this Trainer is spent)
        self._process.threads = self.run.config.threads
        try:
            # (grad on and the config's precision, inside a caller's torch.no_grad() or autocast region too; each
            # module's train/eval mode as it was before, as Lightning's Trainer leaves it)
            with self._process.applied(train=True), without_callers_autocast(self.run.device), \
                    modes_kept(self.run.model), logging_to_stderr(self.config.progress):  # (a notebook: epoch lines)
                complete = f"{self.run.run_dir} has trained its {self.epoch} epoch{'s' * (self.epoch != 1)}: the " \
                    f"run is complete, and fit() gives its result; give `epochs` N > {self.epoch} to train it further"
                if self.epoch and self.epoch >= self.config.epochs and not on_the_command_line():  # (the CLI says
                    log.info("%s", complete)  # its own; else the old result, without a word)
                result = fit(self)
                if self.run.data.unseen_test is not None and result.best_epoch:  # (best.pt was written)
                    # By one process; the others wait for it here, where a stop signal is said alike by all (not in
                    # the process group's closing wait, a bare "interrupted").
                    with stop_at_once(self.run, "while best.pt was scored on the unseen test split"):
                        if self.run.dist.is_main and (self.run.run_dir / "best.pt").is_file():
                            result.unseen_test = score_unseen_test(self.run)
                        self.run.dist.barrier()
        except (RefusedWrite, DiskFullError) as err:  # the folder turned read-only or full: what was saved resumes
            self.run.dist.close(finished=False)
            raise stopped_writing(self.run, err, self._saved_epoch) from None
        except NonFiniteLoss as err:
            if self.run.dist.is_main and (self.run.run_dir / "last.pt").exists():  # (none saved: the folder forgot)
                record_stop(self.run.run_dir, str(err))
            self.run.dist.close()
            raise
        except TrainingInterrupted:
            self.run.dist.close()
            raise
        except Exception:  # (no image of a streamed pass readable, a worker that died, a fault): a run that saved
            if self.run.dist.is_main:  # nothing leaves no config.json, so that the same command may start again
                forget_unsaved_run(self.run.run_dir)  # there once the cause is mended
            self.run.dist.close(finished=False)
            raise
        except BaseException:  # (a bare KeyboardInterrupt, SystemExit: the folder as a kill would leave it)
            self.run.dist.close(finished=False)
            raise
        finally:
            self.run.batches.close()  # (a stream's workers: kept across this fit's epochs, not the Trainer's life)
            if self._claim is not None:
                self._claim.release()  # (the folder may be resumed by another command now)
        self.run.dist.close()
        return result

    def train_step(self, x: torch.Tensor, y: torch.Tensor, targets: dict[str, torch.Tensor] | None = None,
                   mix: Mix | None = None, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch's forward, loss and backward (the optimizer steps after each --accumulate of them): its loss
        and correct count, as `fit` calls it for every batch. The place to change what a step does (another loss,
        SAM's two passes): override it in a subclass, calling `convolab.training.loop.train_step` for the rest."""
        return train_step(self.run, x, y, targets, mix, micro)

    # ----- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint of the run as it stands: model, optimizer, progress and every random stream."""
        with self._process.applied():  # (its random streams are the run's)
            return checkpoint_state(self.run, self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a `state_dict` into the run's model, optimizer, scaler, EMA and random streams; its progress too."""
        with self._process.applied():
            self.state = restore_checkpoint(self.run, state)

    def save(self, name: str) -> None:
        """Write the checkpoint as `name` in the run folder (rank 0 writes; every rank must call it)."""
        state = self.state_dict()  # on every rank: it gathers their random streams
        if self.run.dist.is_main:
            if name == "best.pt":  # (best.pt's figures on the unseen test split describe the best.pt replaced)
                (self.run.run_dir / TEST_FILE).unlink(missing_ok=True)
            save_checkpoint(state, self.run.run_dir / name)
            if name == "last.pt":
                self._saved_epoch = self.state.epoch

    @classmethod
    def resume(cls, run_dir: str | Path, data: LabelledImages | None = None, model: torch.nn.Module | None = None,
               **overrides: Any) -> Trainer:
        """Continue the run in `run_dir` from its last.pt: model, optimizer, schedule, RNG, metrics;
        `data` (the run's data set, already loaded) spares loading it again. `model`: the network to continue
        in place of the one last.pt names (needed for a model of no registered name, `Trainer(config,
        model=...)`): built as the run's, its weights are replaced by last.pt's."""
        check_field_names(overrides, "Trainer.resume()")  # (before the folder is read)
        check_given(None, data, model, "Trainer.resume")  # (a model's name for `model`: an AttributeError before)
        run_dir = user_path(run_dir)
        config = TrainConfig.from_run(run_dir)
        if not os.access(run_dir, os.W_OK | os.X_OK):  # (a read-only mount: root too)
            raise ConfigError(f"`run_dir` {run_dir} is not writable, and a resumed run writes its checkpoints there: "
                              "make it writable, or copy the run folder elsewhere and resume the copy")
        config.output = str(run_dir)
        if data is None and relative_record(config.data):
            config.data = read_from_here(config.data, run_dir / "config.json", "resume from the folder it was trained "
                                         "in")
        changes = resume_changes(run_dir, config, overrides)  # (lr=0.01 for a run that resolved its lr to 0.01: none)
        config = config.resumed_with(changes)  # one line naming an option a resumed run cannot change
        forget_check(run_dir)  # (a folder refuse_to_overwrite_a_run saw empty earlier in this process)
        # Claimed before anything is read (the trainer shares this claim); rank 0 of --nproc writes the folder.
        claim = claim_run_dir(run_dir, "`run_dir`", resumed=True) if launch_env("RANK", 0) == 0 else None
        try:
            with callers_kept():  # (the recorded model: built in float32, its initial weights not the caller's draws)
                trainer = cls._resumed_or_started(run_dir, config, data, model)
            trainer._epochs_given = "epochs" in overrides
            return trainer
        finally:
            if claim is not None:
                claim.release()

    @classmethod
    def _resumed_or_started(cls, run_dir: Path, config: TrainConfig, data: LabelledImages | None,
                            model: torch.nn.Module | None) -> Trainer:
        last = run_dir / "last.pt"
        if not last.exists():  # (its config.json was read above)
            if os.path.lexists(last):  # (a link that leads nowhere: not a run stopped before its first checkpoint)
                raise CheckpointError(f"{last} is a link that leads nowhere (to a missing file, or back to itself); "
                                      "restore the file it led to, or start a new run in another folder")
            epochs = _epochs_recorded(run_dir)
            if epochs > 1:  # (past its first checkpoint: one killed between epoch 1's writes holds one row at most)
                raise CheckpointError(f"{run_dir} holds {epochs} epochs in metrics.csv but no last.pt, which a resume "
                                      "continues from: restore last.pt from a copy, or start a new run in another "
                                      "folder (training it again here would overwrite best.pt and the metrics)")
            if model is None and is_own_model_run(run_dir):  # config.model is not the model it trained
                raise ConfigError(f"{run_dir} is a run of a model of no registered name (given to Trainer(config, "
                                  "model=...)), stopped before its first checkpoint; continue it with "
                                  f"{resume_call(run_dir, own_model=True)} in Python, giving a model built as "
                                  "the run's")
            # stopped (a kill, a crash, a second Ctrl-C) before its first checkpoint: the run starts again
            log.info("%s holds no last.pt (stopped before its first epoch ended): training it from the start",
                     run_dir)
            return cls(config, data=data, model=model, _resuming=True)
        return cls._resumed(run_dir, config, data, model)

    @classmethod
    def _resumed(cls, run_dir: Path, config: TrainConfig, data: LabelledImages | None,
                 model: torch.nn.Module | None) -> Trainer:
        state = load_checkpoint(run_dir / "last.pt")
        check_same_run(config, state, run_dir)
        # The network the state was saved from (a fine-tuned one keeps its checkpoint's input channels,
        # which need not be the data's); the saved weights replace any initial ones, so the
        # init_from checkpoint is neither read nor needed.
        if model is None and "model_name" in state and not state["model_name"]:
            raise CheckpointError(f"{run_dir / 'last.pt'} holds a model of no registered name (given to Trainer("
                                  f"config, model=...)); continue it with {resume_call(run_dir, own_model=True)} in "
                                  "Python, giving a model built as the run's")
        try:
            model = recorded_model(state, run_dir / "last.pt") if model is None else given_model(model, state, run_dir)
        except ConvolabError:  # (an unregistered model: UnknownModelError is a KeyError too)
            raise
        except KeyError as err:
            raise CheckpointError(f"{run_dir / 'last.pt'} lacks {err}; it was not written by convolab train") from None
        except (TypeError, ValueError) as err:  # (a record edited: options the model does not take)
            raise CheckpointError(f"{run_dir / 'last.pt'} was altered or damaged (its model record does not build a "
                                  f"model: {str(err)[:120]}); restore it from a copy, or start the run anew") from None
        data_cfg = getattr(model, "data_config", None)  # (--normalize model: the run's own, recorded; a model rebuilt
        # by name has its default, not the published weights' or a given model's, which the run normalized by)
        if config.normalize == "model" and data_cfg is not None and "mean" in state and "std" in state \
                and len(state["mean"]) == len(data_cfg.mean):
            model.data_config = dataclasses.replace(data_cfg, mean=tuple(state["mean"]), std=tuple(state["std"]))
        trainer = cls(dataclasses.replace(config, init_from=None), data=data, model=model, _resuming=True)
        check_same_classes(state, trainer.run.data.classes, run_dir, config.data)
        changed = check_same_images(state, trainer.run.data, run_dir, config.data)
        trainer.run.config = config
        altered = "was altered or damaged ({}); it cannot be resumed: restore it from a copy, or start the run anew"
        problem = resume_problem(trainer.run, state)
        try:
            if problem is not None and changed:  # (the data's fault, not the file's: its steps no longer fit)
                raise DataError(f"{changed}; the run cannot go on with them ({problem}): restore the data it was "
                                "trained on, or start a new run")
            if problem is not None:
                raise CheckpointError(f"{run_dir / 'last.pt'} " + altered.format(problem))
            if changed:
                log.warning("%s", changed)
            trainer.load_state_dict(state)
        except Exception as err:
            if trainer._claim is not None:
                trainer._claim.release()
            if isinstance(err, ConvolabError):
                raise
            # what the checks above missed fails deep in torch
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise CheckpointError(f"{run_dir / 'last.pt'} " + altered.format(first)) from None
        trainer._saved_epoch = trainer.epoch
        return trainer


def _epochs_recorded(run_dir: Path) -> int:
    """The epoch rows of a run folder's metrics.csv (0 where it has none or it cannot be read)."""
    try:
        lines = (run_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return 0
    return max(0, len([line for line in lines if line.strip()]) - 1)


def check_given(config: Any, data: Any, model: Any, call: str = "Trainer") -> None:
    """One line, before anything is read or written, for a config, `data=` or `model=` of another kind than they
    take (Trainer("lenet5") was an AttributeError from inside); one too in a process started by spawn (macOS,
    Windows) that is importing the caller's script, as a script without `if __name__ == "__main__":` has it do
    (each DataLoader worker trained a run of its own, and the first said the folder was in use)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # (multiprocessing's own test of it)
        # the line alone, and the process ends (an error's traceback from each worker was 40 lines around it)
        raise SystemExit("a Trainer was made while a new process imported the script that makes it (as spawn, the "
                         "start method of macOS and Windows, starts each DataLoader worker): put the script's work "
                         "under `if __name__ == \"__main__\":`")
    if config is not None and not isinstance(config, TrainConfig):
        example = f"model={config!r}" if isinstance(config, str) else "model=NAME"
        raise ConfigError(f"Trainer takes a TrainConfig, got {config!r:.60}; give Trainer(TrainConfig({example}, "
                          "...))")
    if data is not None and not isinstance(data, LabelledImages):
        raise ConfigError(f"{call}(data=...) takes convolab data, not a {type(data).__name__}: "
                          "convolab.data.ImageData(name, Split(uint8 N x C x H x W images, int64 labels), Split(...) "
                          "for the test images, class names), or what convolab.data.load_data(...) returns; or leave "
                          "data out and name the data in TrainConfig(data=...)")
    if model is not None and not isinstance(model, torch.nn.Module):
        instead = "name a registered model in TrainConfig(model=...) instead" if config is not None else \
            "leave it out (last.pt names the run's model), or give a module built as the run's"
        raise ConfigError(f"{call}(model=...) takes a torch.nn.Module, not a {type(model).__name__}; {instead}")


def recorded_data(config: TrainConfig, data: LabelledImages | None) -> TrainConfig:
    """`config` as a run on `data` (given to the Trainer) records it: the `data` load_data read them from (or the name
    of data made in Python), with the options of that call that decided their images (a CSV's `targets`, a folder's
    hold-out `val_fraction`, ...), so that a resume and `evaluate` read them again; a config that names others is
    warned of. (Before: config.data, mnist5k by default, and its options, whatever the run trained on.) An
    `image_size` the config gives is kept: the run trains at it."""
    if data is None:
        return config
    recorded = {"data": data.source or data.name, **(data.loaded_with or {})}
    if config.image_size is not None:
        recorded.pop("image_size", None)
    changed = {name: value for name, value in recorded.items() if getattr(config, name) != value}
    named = [name for name in changed if getattr(config, name) != FIELDS[name].default]
    if named:
        log.warning("%s name%s other data than those given to the Trainer: the run records theirs, %s",
                    ", ".join(f"`{name}` {getattr(config, name)}" for name in named), "s" * (len(named) == 1),
                    ", ".join(f"`{name}` {value}" for name, value in changed.items()))
    return dataclasses.replace(config, **changed) if changed else config


def train(config: TrainConfig) -> TrainResult:
    """Build data and model from `config` and train."""
    return Trainer(config).fit()


__all__ = ["NonFiniteLoss", "TrainResult", "Trainer", "TrainingInterrupted", "check_same_classes", "check_same_run",
           "evaluate", "train"]
