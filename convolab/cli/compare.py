"""`convolab compare MODEL [MODEL ...]`: train models under equal options, report them side by side."""
from __future__ import annotations

import argparse
import dataclasses

from ..compare import compare_models, default_compare_dir, markdown_table, resume_comparison
from ..errors import ConfigError
from ._args import positive_float
from .train import add_training_arguments, config_from_args

HELP = ("train several models in turn with the same data and options; one report (table, curves, "
        "report.html) compares them")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="*", metavar="MODEL", help="model names (see `convolab models`)")
    parser.add_argument("--resume", metavar="DIR", help="continue the comparison in DIR (its compare.json "
                        "holds the models and options): finished runs are kept, an interrupted one resumes")
    parser.add_argument("--budget-seconds", type=positive_float, metavar="S",
                        help="stop each model after the epoch in which its training time reaches S seconds "
                        "(--epochs still sets the schedule's length and the most epochs)")
    add_training_arguments(parser)
    for action in parser._actions:  # the shared option means the comparison folder here
        if action.dest == "output":
            action.metavar = "DIR"
            action.help = ("comparison folder: the report, and runs/MODEL/ for each run "
                           "(default: runs/compare-DATA[-N])")


def run(args: argparse.Namespace) -> int:
    command = ["convolab", *args._argv]
    if args.resume:
        if args.models:
            raise ConfigError(f"--resume takes no MODEL; the models come from {args.resume}/compare.json")
        results = resume_comparison(args.resume, command, progress=args.progress)
        output = args.resume
    else:
        if not args.models:
            raise ConfigError("give the MODELs to compare (see `convolab models`) or --resume DIR")
        config = dataclasses.replace(config_from_args(args, model=args.models[0]),
                                     budget_seconds=args.budget_seconds)
        output = args.output or str(default_compare_dir(args.data))
        results = compare_models(args.models, config, output, command)
    print(markdown_table(results), end="")
    failed = [r.model for r in results if not r.ok]
    print(f"report: {output}/report.html (results.json, results.md, curves.png beside it)")
    if failed:
        print(f"{len(failed)} of {len(results)} models did not finish: {', '.join(failed)}")
        return 1
    return 0
