"""`convolab report`: the comparison report of runs already made, written into a folder of its own."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .._paths import check_usable, making, probe_output, writable_output
from ..errors import ConfigError
from ..training import TrainConfig
from ..training.rundir import holder, in_use, refuse_output_inside_data, run_files
from .report import write_report
from .results import ModelResult, read_run
from .runner import claimed, refuse_experiment


def report_runs(run_dirs: list[str | Path], output: str | Path,
                command: list[str] | str) -> list[ModelResult]:
    """The comparison report of runs already made (`convolab report`); runs of other data sets are
    refused."""
    if not run_dirs:
        raise ConfigError("give at least one RUN_DIR (a `convolab train` or `convolab compare` run folder)")
    paths = [Path(p) for p in run_dirs]
    output = Path(output)
    check_usable(output, "--output")
    for path in paths:
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a run folder (no config.json); give the --output folder of a "
                              "`convolab train` run or a folder under a comparison's runs/")
        if in_use(path):  # (before: reported as "interrupted" while it trained on)
            who = holder(path) or " (a run still training?)"
            raise ConfigError(f"{path} is in use by another convolab command{who}; report it once that command "
                              "has ended")
        if path.resolve() == output.resolve():
            raise ConfigError(f"--output {output} is one of the runs (its curves.png would be overwritten); "
                              "write the report to another folder")
    twice = next((p for i, p in enumerate(paths) if p.resolve() in [q.resolve() for q in paths[:i]]), None)
    if twice is not None:
        raise ConfigError(f"{twice} is given twice; give each run once")
    if (output / "compare.json").is_file():  # (its report files describe its own runs)
        raise ConfigError(f"--output {output} holds a comparison (compare.json), whose report would be overwritten; "
                          "write the report to another folder")
    refuse_experiment(output, "its curves.png would be overwritten; write the report to another folder")
    found = run_files(output)
    if found:
        raise ConfigError(f"--output {output} holds a run ({', '.join(found)}), whose curves.png would be "
                          "overwritten; write the report to another folder")
    for path in paths:  # (a report inside a run's image folder would be read as images of a class)
        refuse_output_inside_data(dataclasses.replace(TrainConfig.from_run(path), output=str(output)))
    writable_output(output, "--output", create=False)  # write_report makes it
    probe_output(output, "--output")  # (root passes writable_output's permission check even on /sys)
    results = [read_run(path) for path in paths]
    names = [r.model for r in results]
    twice = [r for r in results if names.count(r.model) > 1]  # the same model run twice: told apart by folder
    for r, folder in zip(twice, distinct_tails([r.run_dir for r in twice])):
        r.model = f"{r.model} ({folder})"
    # (claimed: two reports into one folder mixed their files; made, and removed again if the report is refused)
    with making(output), claimed(output, "--output"):
        write_report(results, output, command)
    return results


def distinct_tails(paths: list[str]) -> list[str]:
    """Each path's last folders, as few as tell them apart: `lenet5` beside `resnet20`, but `A/lenet5` and
    `B/lenet5` for a comparison's runs/lenet5 of two comparisons."""
    parts = [Path(p).absolute().parts for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        tails = ["/".join(p[-depth:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return [str(p) for p in paths]


__all__ = ["distinct_tails", "report_runs"]
