"""`convolab reproduce NAME`: run one of the articles' experiments through `compare` and say, from the
measured numbers, whether its claim held.

The output folder holds one comparison per seed and arm (`seed-S/ARM/`, each an ordinary compare
folder with its own report), and the experiment's report: `reproduce.md` (our figures beside the
paper's, the verdict as its last line), `reproduce.json` and `curves.png` (training error by step and
test accuracy by epoch, the mean over seeds).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from pathlib import Path
from typing import Any

from .._atomic import atomic_write, json_text, write_utf8
from .._paths import probe_output, user_path, writable_output
from ..compare import compare_models, resume_comparison
from ..compare.record import read_experiment
from ..compare.runner import (
    COMPARE_FILE,
    EXPERIMENT_FILE,
    EXPERIMENT_REPORT,
    Comparison,
    check_device_options,
    claimed,
)
from ..compare.runner import how_to_continue as continue_comparison
from ..compare.seeds import pair_tests, seed_values, spread
from ..errors import ConfigError, way_on
from ..training import TrainConfig, TrainingInterrupted
from ..training.checkpoint import load_checkpoint
from ..training.metrics import axis_label, epoch_axis, figure_title, read_metrics, step_points, steps_label
from ..training.run_data import load_config_data
from ..training.rundir import LOCK_FILE, take_default_dir
from ..training.signals import stops_between_runs
from .experiments import EXPERIMENTS, Experiment, Outcome

log = logging.getLogger("convolab")

REPORT = "reproduce.md"
STATE = EXPERIMENT_FILE  # experiment.json: the experiment, its form and seeds, the shared options: what --resume needs
FORMAT = "convolab-reproduce-1"


def get_experiment(name: str) -> Experiment:
    """The experiment called `name`; an unknown name is a ConfigError listing them all."""
    if name not in EXPERIMENTS:
        shown = way_on("`convolab reproduce --list` shows them", "EXPERIMENTS holds them")
        raise ConfigError(f"no experiment named {name!r}; {shown} ({', '.join(EXPERIMENTS)})")
    return EXPERIMENTS[name]


def arm_configs(experiment: Experiment, quick: bool, seed: int, base: TrainConfig) -> list[TrainConfig]:
    """The compare configuration of each arm for one seed: the experiment's schedule over `base`."""
    values = experiment.quick if quick else experiment.full
    configs = []
    for arm in experiment.arms:
        options = values | arm.options | ({} if quick else arm.full)
        configs.append(dataclasses.replace(base, **options, seed=seed, model=arm.models[0]))
    return configs


def run_experiment(experiment: Experiment, output: str | Path, base: TrainConfig, quick: bool = False,
                   seeds: int | None = None, command: str = "", default_stem: str | None = None
                   ) -> tuple[bool | None, str, Path]:
    """Train every arm for every seed, write the report, and return (held, verdict line, report path); held is
    None on data the claim is not about (`Experiment.off_claim`: nothing is judged).
    The folder's experiment.json records the experiment, so an interrupted one continues with
    `resume_experiment` (`convolab reproduce --resume DIR`). `default_stem`: `output` is the folder
    `next_free_dir(default_stem)` named, and a command started beside this one that makes it first leaves this
    one the next free name."""
    output = writable_output(user_path(output), "`output`", create=False)
    existed = output.exists()
    if (output / STATE).is_file():
        raise ConfigError(f"`output` {output} already holds an experiment; continue it with "
                          f"{how_to_continue(output)}, or give a new folder")
    if output.exists() and any(p.name != LOCK_FILE for p in output.iterdir()):  # (a claim's file alone: nothing)
        raise ConfigError(f"`output` {output} is not empty; give a new folder for the experiment")
    probe_output(output, "`output`")  # (root passes writable_output's permission check even on /sys)
    # Bad options and data stop the experiment before its folder exists (each comparison checks them again).
    check_device_options(base)
    count = seeds or (experiment.quick_seeds if quick else experiment.full_seeds)
    seed_values(count, base.seed)  # (the last seed within bounds: --seed 4294967295 --seeds 2 is refused)
    load_config_data(arm_configs(experiment, quick, base.seed, base)[0], say_subsets=False)
    state = {"format": FORMAT, "experiment": experiment.name, "quick": quick, "seeds": count,
             "config": base.to_record(), "command": command or f"convolab reproduce {experiment.name}",
             "resumed_by": []}
    if default_stem is not None and not existed:
        output = take_default_dir(output, default_stem)
    output.mkdir(parents=True, exist_ok=True)
    with claimed(output, "`output`"):
        if (output / STATE).is_file():  # (written meanwhile, by a command started beside this one)
            raise ConfigError(f"`output` {output} already holds an experiment; give a new folder")
        _save_state(output, state)
        return _run_arms(experiment, output, base, state, resume=False)


def resume_experiment(output: str | Path, command: str | None = None,
                      progress: bool | None = None) -> tuple[bool | None, str, Path]:
    """Continue the experiment in `output`: finished comparisons are kept, an interrupted one resumes (its
    finished runs kept), the rest train; then the report. Returns as `run_experiment`. `command`: what continued
    it, as the report says (from Python, by default, the call)."""
    if command is None:
        command = f"resume_experiment({str(output)!r}) in Python"
    output = user_path(output)
    path = output / STATE
    if not path.is_file() and (output / EXPERIMENT_REPORT).is_file():
        raise ConfigError(f"{output} holds an experiment of an older convolab (its {EXPERIMENT_REPORT}, no "
                          f"{STATE}), which cannot be continued; run it again into another `output`")
    if not path.is_file():
        made = way_on("a `convolab reproduce` run", "run_experiment")
        raise ConfigError(f"{output} is not an experiment's folder (no {STATE}); give the `output` folder of {made}")
    with claimed(output, "the experiment", resumed=True):  # (one line when another command holds it: a second --resume)
        state, base = read_experiment(path, FORMAT)  # (each field checked, before anything is written)
        try:
            experiment = get_experiment(state["experiment"])
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}; the file was edited or damaged: start the experiment again in a new "
                              "folder") from None
        for k in range(state["seeds"]):  # (its comparisons' records too, before this one is written)
            for i, arm in enumerate(experiment.arms):
                folder = output / f"seed-{base.seed + k}" / f"arm-{i + 1}"
                if (folder / COMPARE_FILE).is_file() and Comparison.load(folder).models != list(arm.models):
                    # (resnet-cifar's resnet110 moved to an arm of its own, with the paper's warm-up)
                    raise ConfigError(f"{output}: its {folder.relative_to(output)} trains "
                                      f"{', '.join(Comparison.load(folder).models)}, where this convolab's "
                                      f"{experiment.name} trains {', '.join(arm.models)} in that arm (the experiment "
                                      "was started by an older convolab); run it again into another `output`")
        if progress is not None:
            base.progress = progress
        state["resumed_by"].append(command)
        _save_state(output, state)
        return _run_arms(experiment, output, base, state, resume=True)


def options_said(options: dict[str, Any]) -> str:
    """An arm's options as a line names them, by argument (the CLI: by flag): "`lr` 1.0, `model_options`
    batch_norm=False"."""
    def said(name: str, value: Any) -> str:
        if isinstance(value, dict):
            return " ".join(f"`{name}` {key}={each}" for key, each in value.items())
        return {True: f"`{name}`", False: f"`{name}=False`"}.get(value, f"`{name}` {value}") \
            if isinstance(value, bool) else f"`{name}` {value}"

    return ", ".join(said(name, value) for name, value in options.items())


def how_to_continue(output: str | Path, quoted: bool = True) -> str:
    """What continues the experiment in `output` (the comparison's wording, `compare.runner.how_to_continue`)."""
    return continue_comparison(output, quoted, "convolab reproduce --resume", "resume_experiment")


def _save_state(output: Path, state: dict[str, Any]) -> None:
    atomic_write(output / STATE, lambda tmp: Path(tmp).write_text(json.dumps(state, indent=1), encoding="utf-8"))


def _run_arms(experiment: Experiment, output: Path, base: TrainConfig, state: dict[str, Any],
              resume: bool) -> tuple[bool | None, str, Path]:
    count, quick = state["seeds"], state["quick"]
    off_claim = experiment.off_claim(base.data)
    if off_claim:
        log.warning("%s: %s: the runs train and are reported, but the source's figures are %s's and the claim is "
                    "not judged", experiment.name, off_claim, experiment.claim_data)
    command = state["resumed_by"][-1] if resume else state["command"]
    runs: dict[str, list[Path]] = {label: [] for label in experiment.labels()}
    with stops_between_runs() as stop_here:  # (a Ctrl-C between its comparisons: raised at the next check)
        for k in range(count):
            seed = base.seed + k
            for i, (arm, config) in enumerate(zip(experiment.arms, arm_configs(experiment, quick, seed, base))):
                folder = output / f"seed-{seed}" / f"arm-{i + 1}"
                extra = arm.options | ({} if quick else arm.full)
                log.info("%s: seed %d, %s%s", experiment.name, seed, ", ".join(arm.models),
                         f" with {options_said(extra)}" if extra else "")
                try:
                    stop_here("between the experiment's runs")
                    if resume and (folder / COMPARE_FILE).is_file():
                        results = resume_comparison(folder, command, progress=base.progress)
                    else:
                        # (its quick form asks for "at most" so many images: no warning where the data hold fewer)
                        results = compare_models(list(arm.models), config, folder, command, say_subsets=False)
                except TrainingInterrupted as stop:
                    raise TrainingInterrupted(f"stopped during {experiment.name} (seed {seed}, arm {i + 1}); what "
                                              f"finished is kept; continue with: {how_to_continue(output, False)}",
                                              stop.signum) from None
                for result in results:
                    if not result.ok:
                        raise ConfigError(f"{experiment.name}: {result.model} did not finish ({result.status}); see "
                                          f"{folder}; once fixed, continue with: {how_to_continue(output, False)}")
                    runs[arm.run_label(result.model)].append(Path(result.run_dir))
        outcome = Outcome({label: [read_metrics(d) for d in dirs] for label, dirs in runs.items()})
        held, line = (None, experiment.not_judged(outcome, base.data)) if off_claim else experiment.verdict(outcome)
        write_report(experiment, outcome, runs, output, quick, count, line, held, base.data)
        stop_here(f"as the experiment ended; every run finished, and its report is in {output}")
    return held, line, output / REPORT


def summary_rows(experiment: Experiment, outcome: Outcome) -> list[dict[str, Any]]:
    rows = []
    for label in experiment.labels():
        rows.append({"run": label, "paper": experiment.paper.get(label, ""), "seeds": len(outcome.runs[label]),
                     "final train error": [1 - v for v in outcome.final(label, "train_acc")],
                     "final test accuracy": outcome.final(label, "test_acc"),
                     "best test accuracy": [max(r["test_acc"] for r in h) for h in outcome.runs[label] if h]})
    return rows


def data_line(runs: dict[str, list[Path]]) -> list[str]:
    """`Data: mnist5k, 4,000 training and 1,000 test images.`, as the first run's checkpoint records them."""
    first = next((d for dirs in runs.values() for d in dirs if (d / "last.pt").is_file()), None)
    record = load_checkpoint(first / "last.pt") if first is not None else {}
    if not record.get("data_images"):
        return []
    train, test = record["data_images"]
    return [f"Data: {record.get('data')}, {train:,} training and {test:,} test images."]


def write_report(experiment: Experiment, outcome: Outcome, runs: dict[str, list[Path]], output: Path,
                 quick: bool, seeds: int, verdict: str, held: bool | None = None, data: str = "") -> None:
    """reproduce.md, reproduce.json and curves.png; `held` None (and a line saying so) where `data` is not what
    the claim is about."""
    rows = summary_rows(experiment, outcome)
    off_claim = experiment.off_claim(data)
    form = f"quick form ({experiment.quick_note})" if quick else f"full form ({experiment.full_note})"
    lines = [f"# {experiment.name}", "", f"Claim: {experiment.claim}.", f"Source: {experiment.source}.",
             f"Run: {form}, {seeds} seed{'s' if seeds != 1 else ''} (mean +- sample standard deviation).",
             *data_line(runs),
             *([f"Not the claim's data: {off_claim}, whose figures do not apply; the runs are reported, and "
                "the claim is not judged."] if off_claim else []), "",
             "| run | paper | final train error | final test accuracy | best test accuracy |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        figures = (spread(row[k]).format(".4f", "+-") for k in ("final train error", "final test accuracy",
                                                                 "best test accuracy"))
        lines.append(f"| {row['run']} | {row['paper']} | " + " | ".join(figures) + " |")
    significance = [pair.line for pair in pair_tests([(k, outcome.final(k, "test_acc")) for k in experiment.labels()])]
    if seeds > 1:
        lines += ["", "Is each difference in final test accuracy larger than the seeds' noise (Welch's t-test, "
                  "two-sided, 5%; of several pairs, each judged on its p-value Holm-adjusted for the number of pairs "
                  "tested)?", "", *(f"- {line}" for line in significance)]
    lines += ["", "Curves: curves.png (training error by step, test accuracy by epoch; means over seeds). "
              "Each run's own folder and each comparison's report are under seed-S/arm-K/.", "", verdict, ""]
    text = "\n".join(lines)
    atomic_write(output / REPORT, lambda tmp: write_utf8(tmp, text))
    state = {"experiment": experiment.name, "quick": quick, "seeds": seeds, "verdict": verdict, "held": held,
             "rows": rows, "runs": {k: [str(p) for p in v] for k, v in runs.items()}}
    atomic_write(output / EXPERIMENT_REPORT, lambda tmp: Path(tmp).write_text(json_text(state), encoding="utf-8"))
    plot_experiment(experiment, outcome, runs, output / "curves.png")


def plot_experiment(experiment: Experiment, outcome: Outcome, runs: dict[str, list[Path]], path: Path) -> None:
    """Training error by step (He et al.'s Fig. 6 axes; shaded: min..max over seeds) and test accuracy by
    epoch, the mean over seeds."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    fig = Figure(figsize=(11, 4))
    ax_steps, ax_test = fig.subplots(1, 2)
    most = 0  # epochs
    for label, dirs in runs.items():
        steps, mean, low, high = step_points(dirs, "train_error")  # (each window at its centre, whole ones)
        if steps:
            ax_steps.plot(steps, mean, label=label, marker="o" if len(steps) == 1 else None)
            ax_steps.fill_between(steps, low, high, alpha=0.2, linewidth=0)
        histories = outcome.runs[label]
        epochs = min((len(h) for h in histories), default=0)
        most = max(most, epochs)
        if epochs:
            acc = [statistics.fmean(h[i]["test_acc"] for h in histories) for i in range(epochs)]
            ax_test.plot(range(1, epochs + 1), acc, marker="o", label=label)
    drawn = [d for dirs in runs.values() for d in dirs]
    ax_steps.set(xlabel="step", ylabel=axis_label(f"training error ({steps_label(drawn)})"),
                 title="training error")
    ax_test.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    epoch_axis(ax_test, most)
    for ax in (ax_steps, ax_test):
        ax.grid(alpha=0.3)
        for text in ax.legend(fontsize=8).get_texts():  # (the names as written: a `$` begins no mathtext)
            text.set_parse_math(False)
    fig.suptitle(figure_title(experiment.name, 100), parse_math=False)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


__all__ = ["EXPERIMENTS", "Experiment", "Outcome", "arm_configs", "get_experiment", "resume_experiment",
           "run_experiment"]
