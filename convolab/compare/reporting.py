"""`convolab report`: the comparison report of runs already made, written into a folder of its own."""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

from .._paths import check_usable, making, probe_output, user_path, writable_output
from ..errors import ConfigError, way_on
from ..training import TrainConfig
from ..training.rundir import holder, in_use, refuse_output_inside_data, run_files
from .report import write_report, write_seeds_report
from .results import ModelResult, read_run
from .runner import COMPARE_FILE, claimed, how_to_continue, refuse_experiment
from .seeds import has_several_seeds, settings_apart


def report_runs(run_dirs: Sequence[str | Path] | str | Path, output: str | Path,
                command: list[str] | str | None = None) -> list[ModelResult]:
    """The comparison report of runs already made (`convolab report`); runs of other data sets are
    refused. One folder alone is a list of one; `command`: what made it, as the report says (from Python, by
    default, the call)."""
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if command is None:
        command = f"report_runs({[str(d) for d in run_dirs]!r}, ...) in Python"
    if not run_dirs:
        made = way_on("a `convolab train` or `convolab compare` run", "a Trainer's or a comparison's")
        raise ConfigError(f"give at least one run folder ({made})")
    run_dirs = [user_path(p) for p in run_dirs]
    groups = [runs_within(p) for p in run_dirs]  # (a comparison's folder, or its runs/MODEL of seeds: theirs)
    paths = [run for group in groups for run in group]
    output = user_path(output)
    check_usable(output, "`output`")
    for path in paths:
        if _is_comparison(path) and not _is_run(path):
            raise ConfigError(f"{path} is a comparison none of whose runs has begun (no runs/MODEL/config.json); "
                              f"report it once one has, or continue it with {how_to_continue(path)}")
        if not (path / "config.json").is_file():
            made = way_on("a `convolab train` run", "a Trainer's run")
            raise ConfigError(f"{path} is not a run folder (no config.json); give the `output` folder of {made}, a "
                              "comparison's folder or a folder under its runs/")
        if in_use(path):  # (a run still training would read as "interrupted")
            who = holder(path) or " (a run still training?)"
            raise ConfigError(f"{path} is in use by another convolab command{who}; report it once that command "
                              "has ended")
        if path.resolve() == output.resolve():
            raise ConfigError(f"`output` {output} is one of the runs (its curves.png would be overwritten); "
                              "write the report to another folder")
    twice = next((p for i, p in enumerate(paths) if p.resolve() in [q.resolve() for q in paths[:i]]), None)
    if twice is not None:
        raise ConfigError(f"{twice} is given twice; give each run once")
    if (output / "compare.json").is_file():  # (its report files describe its own runs)
        raise ConfigError(f"`output` {output} holds a comparison (compare.json), whose report would be overwritten; "
                          "write the report to another folder")
    refuse_experiment(output, "its curves.png would be overwritten; write the report to another folder")
    found = run_files(output)
    if found:
        raise ConfigError(f"`output` {output} holds a run ({', '.join(found)}), whose curves.png would be "
                          "overwritten; write the report to another folder")
    for path in paths:  # (a report inside a run's image folder would be read as images of a class)
        refuse_output_inside_data(dataclasses.replace(TrainConfig.from_run(path), output=str(output)))
    writable_output(output, "`output`", create=False)  # write_report makes it
    probe_output(output, "`output`")  # (root passes writable_output's permission check even on /sys)
    results = [read_run(path) for path in paths]
    # A model's seeds (runs/MODEL/seed-S) are one model of several runs; the same model given as two folders (two
    # runs, two comparisons' runs/MODEL) is two, told apart by folder
    given = [Path(p) for p, group in zip(run_dirs, groups) for _ in group]
    models: dict[str, set[Path]] = {}
    for r, folder in zip(results, given):
        models.setdefault(r.model, set()).add(folder.absolute())
    twice = [(r, folder.absolute()) for r, folder in zip(results, given) if len(models[r.model]) > 1]
    folders = sorted({folder for _, folder in twice})
    tails = dict(zip(folders, distinct_tails([str(f) for f in folders])))
    for r, folder in twice:  # (a folder named as its model, runs/MODEL's or a user's: named with the one above it)
        tail = tails[folder] if tails[folder] != r.model else "/".join(folder.parts[-2:])
        r.model = f"{r.model} ({tail})"
    settings_apart(results)
    # (claimed: two reports into one folder mixed their files; made, and removed again if the report is refused)
    with making(output), claimed(output, "`output`"):
        (write_seeds_report if has_several_seeds(results) else write_report)(results, output, command)
    return results


def runs_within(path: Path) -> list[Path]:
    """The run folders RUN_DIR `path` stands for: itself (a run); a comparison's runs/MODEL of several seeds: its
    seed-S runs, in seed order; a comparison's folder (compare.json): each of its runs/MODEL in the order of its
    models, and the seeds of each. Any other folder is itself (and refused as no run)."""
    if _is_run(path):
        return [path]
    seeds = sorted((p for p in _subfolders(path) if re.fullmatch(r"seed-(-?\d+)", p.name) and _is_run(p)),
                   key=lambda p: int(p.name[5:]))  # (a seed not yet run has no folder, or no config.json)
    if seeds:
        return seeds
    if not _is_comparison(path):
        return [path]
    try:
        order = json.loads((path / COMPARE_FILE).read_text(encoding="utf-8")).get("models")
    except (OSError, ValueError, AttributeError):
        order = None
    folders = _subfolders(path / "runs")
    if isinstance(order, list):
        rank = {name: i for i, name in enumerate(order) if isinstance(name, str)}
        folders.sort(key=lambda p: (rank.get(p.name, len(rank)), p.name))
    runs = [run for folder in folders for run in runs_within(folder) if _is_run(run)]  # (its models not run: none)
    return runs or [path]


def _is_comparison(path: Path) -> bool:
    return (path / COMPARE_FILE).is_file()


def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file()


def _subfolders(path: Path) -> list[Path]:
    """The folders in `path` (none where it is no readable folder), by name."""
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def distinct_tails(paths: list[str]) -> list[str]:
    """Each path's last folders, as few as tell them apart: `lenet5` beside `resnet20`, but `A/lenet5` and
    `B/lenet5` for a comparison's runs/lenet5 of two comparisons."""
    parts = [Path(p).absolute().parts for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        tails = ["/".join(p[-depth:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return [str(p) for p in paths]


__all__ = ["distinct_tails", "report_runs", "runs_within"]
