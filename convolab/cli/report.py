"""`convolab report RUN_DIR [RUN_DIR ...]`: the comparison report of runs already made."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..compare import report_runs, significance_lines, summary_table
from ._args import nonempty

HELP = "compare finished runs (of one data set) in one report: table, curves and report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", type=nonempty("a run folder"),
                        help="run folders of `convolab train` or of a comparison (DIR/runs/MODEL; with several seeds "
                             "its seed-S runs, one model), or a comparison's folder DIR (each of its runs)")
    parser.add_argument("--output", required=True, metavar="DIR", type=nonempty("a folder for the report"),
                        help="folder for results.json, results.md, curves.png and report.html (required)")


def run(args: argparse.Namespace) -> int:
    results = report_runs(args.run_dirs, args.output, ["convolab", *args._argv])
    print(summary_table(results, escape=False), end="")  # (runs of several seeds: each model's mean and spread)
    for line in significance_lines(results):
        print(line)
    print(f"report: {Path(args.output) / 'report.html'}")  # (a path, however --output ends: `out/` too)
    return 0
