"""Train several models in turn under one set of options, on data loaded once, then write one report.

The comparison folder holds compare.json (the invocation and each run's status), runs/<model>/
(one ordinary run folder per model; runs/<model>/seed-<S>/ per model and seed when there are several
seeds) and the report. A run that fails is marked and the others go on; an interruption writes the
report of what finished, and `resume_comparison` continues it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import shlex
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from .._atomic import atomic_write
from .._paths import check_usable, probe_output, user_path, writable_output
from .._registry import models_listed, resolve_name
from ..data import ImageData
from ..errors import ConfigError, ConvolabError, as_said, way_on
from ..training import TrainConfig, Trainer, TrainingInterrupted
from ..training.build import build_run, epoch_lengths, tensorboard_writer
from ..training.device import check_threads, resolve_amp, resolve_device
from ..training.final_test import unscored
from ..training.process import ProcessState, quiet
from ..training.run_data import check_batch_size, load_config_data
from ..training.rundir import (
    claim_run_dir,
    clear_run_dir,
    data_stem,
    next_free_dir,
    refuse_output_inside_data,
    run_files,
    take_default_dir,
)
from ..training.signals import stops_between_runs
from . import results as rows
from .record import read_comparison
from .report import write_report, write_seeds_report
from .results import INTERRUPTED, NOT_RUN, OK, ModelResult, read_last_state, read_run, run_is_complete
from .seeds import seed_values

log = logging.getLogger("convolab")

COMPARE_FILE = "compare.json"
FORMAT = "convolab-compare-1"
EXPERIMENT_FILE = "experiment.json"  # a `convolab reproduce` folder's record (its curves.png is the experiment's)
EXPERIMENT_REPORT = "reproduce.json"  # an experiment's report: the only record one of an older convolab holds
Start = Callable[[TrainConfig, ImageData, "bool | str"], Trainer]  # (config, data, pretrained): a run from weights


class Run(NamedTuple):
    """One training run of a comparison."""

    model: str
    seed: int
    name: str  # its folder under runs/ and its key in compare.json's statuses: MODEL, or MODEL/seed-S


@dataclass
class Comparison:
    """What compare.json holds: enough to continue the comparison with no other argument."""

    output: Path
    models: list[str]
    seeds: list[int]  # each model trains once per seed
    config: TrainConfig  # the options shared by all runs (its model, seed and output are set per run)
    command: str
    resumed_by: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    pretrained: bool | str | None = None  # each run starts from its model's published weights (compare --pretrained)

    @property
    def several_seeds(self) -> bool:
        """True when each model trains with more than one seed (runs in runs/MODEL/seed-S)."""
        return len(self.seeds) > 1

    def runs(self) -> list[Run]:
        """Seed by seed, each model in the order given: an interrupted comparison has as many seeds of
        every model, give or take one."""
        if not self.several_seeds:
            return [Run(model, self.seeds[0], model) for model in self.models]
        return [Run(model, seed, f"{model}/seed-{seed}") for seed in self.seeds for model in self.models]

    def run_dir(self, run: Run) -> Path:
        """The run's folder: OUTPUT/runs/MODEL, or OUTPUT/runs/MODEL/seed-S with several seeds."""
        return self.output / "runs" / run.name

    def save(self) -> None:
        """Write compare.json atomically into `output` (its seeds only when there are several)."""
        state = {"format": FORMAT, "models": self.models, "config": self.config.to_record(),
                 "command": self.command, "resumed_by": self.resumed_by, "statuses": self.statuses,
                 **({"pretrained": self.pretrained} if self.pretrained else {})}
        if self.several_seeds:  # one seed: compare.json as it was before there could be several
            state["seeds"] = self.seeds
        text = json.dumps(state, indent=1) + "\n"
        atomic_write(self.output / COMPARE_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, output: str | Path) -> Comparison:
        """The comparison whose compare.json is in `output`; one ConfigError line where it is missing or damaged."""
        output = user_path(output)
        path = output / COMPARE_FILE
        if not path.is_file():
            raise ConfigError(f"{output} holds no {COMPARE_FILE}; give the `output` folder of "
                              f"{way_on('a `convolab compare` run', 'compare_models')}")
        comparison = cls(output, *read_comparison(path, FORMAT))  # (each field checked: a file edited is one line)
        comparison.pretrained = json.loads(path.read_text(encoding="utf-8")).get("pretrained")  # (a name: weights')
        return comparison


def default_compare_dir(data: str) -> Path:
    """runs/compare-DATA, or -2, -3... beside an existing one (as `convolab train` names runs)."""
    return next_free_dir(f"compare-{data_stem(data)}")


RESUME_AFTER_A_WRITE = "resume the comparison"  # (the end of the status of a run a failed write stopped)


def one_line(err: BaseException) -> str:
    """An exception as one line: the user's whole (its end says what to do), another's short and with its type."""
    text = next(iter(str(err).strip().splitlines()), "")
    if isinstance(err, ConvolabError):
        return text
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def how_to_continue(output: str | Path, quoted: bool = True, resume: str = "convolab compare --resume",
                    call: str = "resume_comparison") -> str:
    """What continues the comparison (or experiment) in `output`: its `resume` command, or from Python `call`."""
    command = f"{resume} {shlex.quote(str(output))}"
    return way_on(f"`{command}`" if quoted else command, f"{call}({str(output)!r})")


def compare_models(models: Sequence[str] | str, config: TrainConfig, output: str | Path,
                   command: list[str] | str | None = None, seeds: int | Sequence[int] = 1,
                   pretrained: bool | str | None = None, start: Start | None = None,
                   say_subsets: bool = True) -> list[ModelResult]:
    """Train `models` one after another with `config`'s options and write the report into `output`.

    seeds: train each model this many times, with the seeds config.seed, config.seed + 1, ..., or once
    with each seed of a list. With several seeds each run has its folder runs/MODEL/seed-S and the
    report gives each model's mean and standard deviation over its seeds. Returns a row per run. `pretrained`:
    each run starts from its model's published weights, by `start` (convolab.finetune.pretrained_trainer).
    `say_subsets`: a warning where a subset asks for more images than its split holds. `command`: what made it, as
    the report says (from Python, by default, the call). One model's name alone is a list of one.
    """
    models = [models] if isinstance(models, str) else list(models)
    if command is None:
        command = f"compare_models({models!r}, ...) in Python"
    if not models:
        raise ConfigError(f"give at least one model to compare ({models_listed()})")
    check_repeats(models)  # (and a typo fails now, not after the models before it have trained)
    seeds = seed_values(seeds, config.seed)
    output = user_path(output)
    check_usable(output, "`output`")  # (a name too long: every check below would raise it)
    if (output / COMPARE_FILE).is_file():
        raise ConfigError(f"{output} already holds a comparison; continue it with {how_to_continue(output)} "
                          "or choose another `output`")
    refuse_experiment(output, "the comparison's report would overwrite its curves.png: choose another `output`")
    found = run_files(output)
    if found:
        raise ConfigError(f"`output` {output} holds a run ({', '.join(found)}); the comparison's report would "
                          "overwrite its curves.png: choose another `output`")
    shared = dataclasses.replace(config, model="", output=None, seed=seeds[0])
    command = command if isinstance(command, str) else shlex.join(command)
    comparison = Comparison(output, list(models), seeds, shared, command, pretrained=pretrained)
    refuse_existing_runs(comparison)
    default = config.output is None and output.parent == Path("runs")  # (named as `train` names runs/)
    existed = output.exists()
    refuse_output_inside_data(config if default else dataclasses.replace(config, output=str(output)))
    writable_output(output, "`output`", create=False)  # made below, once the data are read
    probe_output(output, "`output`")  # (root passes writable_output's permission check even on /sys)
    check_device_options(config)
    data = _load(config, say=say_subsets)  # a data set that cannot be read stops the comparison before it exists
    check_run_options(config, data)
    check_some_model_builds(models, config, data)
    if default and not existed:  # named by what existed: a command started beside it may have taken it since
        output = comparison.output = take_default_dir(output, f"compare-{data_stem(config.data)}")
    output.mkdir(parents=True, exist_ok=True)
    with claimed(output, "`output`"):
        if (output / COMPARE_FILE).is_file():  # (written meanwhile, by a command started beside this one)
            raise ConfigError(f"{output} already holds a comparison; continue it with "
                              f"{how_to_continue(output)} or choose another `output`")
        comparison.save()
        return run_comparison(comparison, data=data, start=start)


@contextlib.contextmanager
def claimed(folder: Path, argument: str, resumed: bool = False) -> Iterator[None]:
    """`folder` claimed for this command while it writes there (its record, runs and report): one line when
    another convolab command holds it (two started with one --output, or a second --resume of it)."""
    claim = claim_run_dir(folder, argument, resumed=resumed)
    try:
        yield
    finally:
        if claim is not None:
            claim.release()


def refuse_experiment(output: Path, what: str) -> None:
    """An --output holding a `convolab reproduce` experiment is refused: the report would overwrite its own (one an
    older convolab wrote holds its report, reproduce.json, without experiment.json)."""
    for marker in (EXPERIMENT_FILE, EXPERIMENT_REPORT):
        if (output / marker).is_file():
            raise ConfigError(f"`output` {output} holds an experiment ({marker}); {what}")


def check_repeats(models: list[str]) -> None:
    """A model given twice, or under two of its names (`lenet5 lenet`), would train twice: refused, naming the
    spellings where they differ."""
    spellings: dict[str, list[str]] = {}
    for name in models:
        spellings.setdefault(resolve_name(name), []).append(name)
    for canonical, names in spellings.items():
        if len(names) > 1:
            as_ = f" (as {' and '.join(names)})" if len(set(names)) > 1 else ""
            raise ConfigError(f"model {canonical} given twice{as_}; give each model once")


def refuse_existing_runs(comparison: Comparison) -> None:
    """A new comparison trains into no folder that holds a run already (its runs/MODEL, and with several seeds
    runs/MODEL/seed-S): training there would overwrite that run. Nor where runs/ or a runs/MODEL is a file (that
    model would fail), or a runs/MODEL holds other files: they would lie among the run's, and go with its folder
    if the run failed and `--resume` trained it afresh. An empty folder will do."""
    for run in comparison.runs():
        for folder in dict.fromkeys((comparison.output / "runs" / run.model, comparison.run_dir(run))):
            found = run_files(folder)
            if found:
                raise ConfigError(f"{folder} already holds a run ({', '.join(found)}), which the comparison would "
                                  "overwrite: choose another `output`")
    runs = comparison.output / "runs"
    for folder, use in [(runs, "keep its runs"), *((runs / m, f"train {m}") for m in comparison.models)]:
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise ConfigError(f"{folder} is {'a file' if folder.is_file() else 'not a folder'}, where the comparison "
                              f"would {use}: remove it or choose another `output`")
    for model in comparison.models:
        try:
            held = sorted(p.name for p in (runs / model).iterdir()) if (runs / model).is_dir() else []
        except OSError as err:
            raise ConfigError(f"{runs / model} cannot be read ({err.strerror}): choose another `output`") from None
        if held:
            raise ConfigError(f"{runs / model} already holds files that are not a run ({', '.join(held[:3])}"
                              f"{', ...' if len(held) > 3 else ''}), where the comparison would train {model}: "
                              "move them out or choose another `output`")


def check_run_options(config: TrainConfig, data: ImageData) -> None:
    """What fails every run alike, checked once before the comparison's folder exists (as each run's
    build_run checks it): the batch size and --accumulate against the training images, --tensorboard's
    package."""
    check_batch_size(config.batch_size, len(data.train), 1)
    epoch_lengths(len(data.train), config.batch_size, config.accumulate)
    if config.tensorboard:
        tensorboard_writer()


def check_some_model_builds(models: list[str], config: TrainConfig, data: ImageData) -> None:
    """An option that fails every model (a --monitor no run has, a --loss output no model has) refused before the
    comparison exists (not every model "failed", a report of none, exit 1): the models' runs are built in turn
    (nothing trained, nothing written, nothing said) until one builds. Where none does, their lines are the
    command's; where one does, a model that cannot is reported failed in its turn."""
    problems = []
    note = data.subset_note  # (build_run says it, once: for the comparison's first run, not these trial builds)
    for model in models:
        try:
            with quiet(), ProcessState().applied():  # (the caller's random streams, threads and dtype kept)
                build_run(dataclasses.replace(config, model=model, output=None), data, folder=False)
            return
        except ConvolabError as err:
            problems.append((model, one_line(err), err))
        except Exception:  # noqa: BLE001  a fault of a model's own code: its run fails in its turn, as ever
            return
        finally:
            data.subset_note = note
            gc.collect()
    if len({line for _, line, _ in problems}) == 1:
        raise problems[0][2]  # (as it is: a FieldError's line names the option as the command spells it)
    raise ConfigError("no model can train with these options: " + "; ".join(f"{model}: {line}"
                                                                            for model, line, _ in problems))


def check_device_options(config: TrainConfig) -> None:
    """--device, --amp and --threads checked before a comparison's (or an experiment's) folder exists: every run
    would fail alike, and a resumed one cannot change them."""
    resolve_amp(config.amp, resolve_device(config.device))
    check_threads(config.threads)


def resume_comparison(output: str | Path, command: list[str] | str | None = None, progress: bool | None = None,
                      start: Start | None = None) -> list[ModelResult]:
    """Continue the comparison in `output`: finished runs are kept, an interrupted one resumes, the
    rest train. `command`: what continued it, as the report says (from Python, by default, the call)."""
    if command is None:
        command = f"resume_comparison({str(output)!r}) in Python"
    comparison = Comparison.load(output)
    with claimed(comparison.output, "the comparison", resumed=True):  # (its `output`, the CLI's --resume: neither)
        comparison = Comparison.load(output)  # (as the command that held it left it)
        comparison.resumed_by.append(command if isinstance(command, str) else shlex.join(command))
        if progress is not None:
            comparison.config.progress = progress
        comparison.save()
        return run_comparison(comparison, resume=True, start=start)


def _load(config: TrainConfig, say: bool = False) -> ImageData:
    """The comparison's data; `say`: once, as the comparison starts, a subset larger than its split."""
    return load_config_data(config, say_subsets=say)


def run_comparison(comparison: Comparison, resume: bool = False, data: ImageData | None = None,
                   start: Start | None = None) -> list[ModelResult]:
    """Each run in turn (kept, resumed or trained), then the report; failures are recorded, not raised.
    All runs train on one ImageData (`data`, else loaded once when the first run needs it)."""
    if comparison.pretrained and start is None:
        raise ConfigError("a comparison from published weights needs start=convolab.finetune.pretrained_trainer")
    with stops_between_runs() as stop_here:  # (a Ctrl-C between runs: recorded, and raised at the next check)
        return _each_run(comparison, resume, data, start, stop_here)


def _each_run(comparison: Comparison, resume: bool, data: ImageData | None, start: Start | None,
              stop_here: Callable[[str], None]) -> list[ModelResult]:
    """`run_comparison`'s work; `stop_here` raises a stop signal that came between runs, before the next one trains."""
    results: list[ModelResult] = []
    runs = comparison.runs()
    for index, run in enumerate(runs):
        run_dir = comparison.run_dir(run)
        action = _next_action(run_dir, comparison.statuses.get(run.name)) if resume else "train"
        if action == "keep":
            log.info("[%d/%d] %s: finished in %s, kept", index + 1, len(runs), run.name, run_dir)
            comparison.statuses[run.name] = OK
            results.append(_result(comparison, run, OK))
            continue
        if data is None:  # loaded once, and only if something trains
            data = _load(comparison.config)
        try:
            status = _train(comparison, run, run_dir, data, action, f"[{index + 1}/{len(runs)}]", start, stop_here)
        except (KeyboardInterrupt, TrainingInterrupted) as stop:
            comparison.statuses[run.name] = INTERRUPTED
            for later in runs[index + 1:]:
                comparison.statuses.setdefault(later.name, NOT_RUN)
            comparison.save()
            results.append(_result(comparison, run, INTERRUPTED))
            results += [_result(comparison, r, comparison.statuses[r.name]) for r in runs[index + 1:]]
            _write_report(comparison, results)
            doing = "scoring" if "was scored" in f"{stop}" else "starting" if "run began" in f"{stop}" else "training"
            raise TrainingInterrupted(
                f"stopped while {doing} {run.name}; the report in {comparison.output} holds what finished; "
                f"continue with: {how_to_continue(comparison.output, quoted=False)}",
                getattr(stop, "signum", signal.SIGINT)) from None
        comparison.statuses[run.name] = status
        comparison.save()
        results.append(_result(comparison, run, status))
    _write_report(comparison, results)
    stop_here(f"as the comparison ended; every run finished, and the report in {comparison.output} holds them")
    return results


def _write_report(comparison: Comparison, results: list[ModelResult]) -> None:
    write = write_seeds_report if comparison.several_seeds else write_report
    write(results, comparison.output, comparison.command, comparison.resumed_by)


def _next_action(run_dir: Path, status: str | None) -> str:
    """'keep' a finished run, 'resume' an interrupted one, 'train' a failed or missing one afresh."""
    if not (run_dir / "config.json").is_file():
        return "train"
    try:
        state = read_last_state(run_dir)
    except ConvolabError:
        state = None  # an unreadable checkpoint: train again
    if run_is_complete(TrainConfig.from_run(run_dir), state):
        # (one whose scoring of its unseen test split was stopped, or whose test.json could not be written: resumed,
        # it trains no more and is scored)
        return "resume" if unscored(run_dir) else "keep"
    if state is not None and not (status or "").startswith("failed"):
        return "resume"
    return "train"


def _train(comparison: Comparison, run: Run, run_dir: Path, data: ImageData, action: str, step: str,
           start: Start | None = None, stop_here: Callable[[str], None] | None = None) -> str:
    """Train (or resume) one run; its status: OK or 'failed: <reason>'."""
    trainer = None
    try:
        if action == "resume":
            trainer = Trainer.resume(run_dir, data=data, progress=comparison.config.progress)
            if trainer.epoch >= trainer.config.epochs:  # (complete: its unseen test split was not scored)
                log.info("%s %s: scoring best.pt of %s on the test split it kept unseen", step, run.name, run_dir)
            else:
                log.info("%s %s: resuming in %s at epoch %d", step, run.name, run_dir, trainer.epoch + 1)
        else:
            claim = clear_run_dir(run_dir)
            try:
                log.info("%s %s: training in %s", step, run.name, run_dir)
                config = dataclasses.replace(comparison.config, model=run.model, seed=run.seed, output=str(run_dir))
                trainer = start(config, data, comparison.pretrained) if start and comparison.pretrained else \
                    Trainer(config, data=data)  # (it shares the claim, which it holds on)
            finally:
                if claim is not None:
                    claim.release()
        if stop_here is not None:
            stop_here("before the run began")  # (a signal while it was built: its data, its model)
        trainer.fit()
        return OK
    except TrainingInterrupted:
        raise
    except Exception as err:  # any failure of one model must not lose the others
        reason = one_line(err)
        if getattr(err, "mend", None):  # a write that failed (a full disk...): the comparison's --resume retrains it
            reason = f"{err.what}: {err.mend}, then {RESUME_AFTER_A_WRITE}"
        if isinstance(err, ConvolabError):  # the user's to fix: the line says what to do
            log.warning("%s %s failed: %s", step, run.name, reason)
        else:  # a fault of ours or of torch: one line here, the whole traceback in a file for the bug report
            where = rows.save_traceback(comparison.output, run.name)
            log.warning("%s %s failed: %s (the traceback is in %s)", step, run.name, reason, where)
        return f"failed: {as_said(reason)}"  # (the report's reader is the command's user: its flags)
    finally:
        del trainer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next model gets the memory this one held


def _result(comparison: Comparison, run: Run, status: str) -> ModelResult:
    """The report row of `run`; one that never wrote its config is its status and the options it was given."""
    run_dir = comparison.run_dir(run)
    if (run_dir / "config.json").is_file():
        try:
            return read_run(run_dir, status=status, label=run.model)
        except ConvolabError as err:
            status = f"{status}; unreadable run: {as_said(one_line(err))}"
    given = dataclasses.replace(comparison.config, model=run.model, seed=run.seed)
    return ModelResult(model=run.model, run_dir=str(run_dir), status=status, options=rows.run_options(given))
