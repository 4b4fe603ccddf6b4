"""`convolab reproduce NAME`: one of the articles' experiments, run through `compare`, with the paper's
figures beside ours and a last line that says whether the claim held."""
from __future__ import annotations

import argparse
import shlex

from ..data.base import EmptySplitError
from ..errors import ConfigError, DataError
from ..reproduce import EXPERIMENTS, get_experiment, resume_experiment, run_experiment
from ..training import TrainConfig
from ..training.rundir import next_free_dir
from ._args import nonempty, positive_int
from ._options import add_config_options, flag_of, given_config

HELP = "run an experiment of the articles (degradation, resnet-cifar, ...) and say whether its claim held"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME",
                        type=nonempty("an experiment name (`convolab reproduce --list`)"),
                        help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="the experiments, their claims and sources")
    parser.add_argument("--quick", action="store_true",
                        help="the quick form: a subset and fewer epochs (of lenet-fashion, its book's whole CPU-sized "
                             "recipe), 5 to 17 minutes on 2 CPU cores (the README times each)")
    parser.add_argument("--resume", metavar="DIR", type=nonempty("the experiment's folder"),
                        help="continue the experiment in DIR (an interrupted one, or one "
                        "whose run failed and was fixed): finished comparisons and runs are kept, an interrupted "
                        "run resumes, the rest train, then the report")
    parser.add_argument("--seeds", type=positive_int, metavar="N",
                        help="train every run N times, seeds SEED..SEED+N-1 (default: the experiment's)")
    add_config_options(parser, only=("seed", "data", "data_dir", "download", "device", "threads", "output",
                                      "progress"), help={
        "seed": "the first seed (default: 0)",
        "data": "the data set or folder/tar (default: the experiment's; CIFAR-10 experiments take a folder or tar "
                "of it, or cifar10 with --download)",
        "output": "the experiment's folder (default: runs/reproduce-NAME[-N])"})


def list_experiments() -> str:
    lines = []
    for e in EXPERIMENTS.values():
        runs = ", ".join(e.labels())
        seeds = f"; seeds: {e.full_seeds} (quick: {e.quick_seeds})" if max(e.full_seeds, e.quick_seeds) > 1 else ""
        lines.append(f"{e.name:16s} {e.claim}\n{'':16s} source: {e.source}\n{'':16s} runs: {runs}; data: "
                     f"{e.data}; full form: {e.full_note}; quick form: {e.quick_note}{seeds}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_experiments())
        return 0
    command = shlex.join(["convolab", *args._argv])
    if args.resume:
        others = [flag_of(name) for name in given_config(args) if name != "progress"]
        others += [flag for flag, given in (("NAME", args.name), ("--quick", args.quick),
                                            ("--seeds", args.seeds is not None)) if given]
        if others:  # (the experiment's runs keep what they were started with)
            raise ConfigError(f"--resume {args.resume} continues the experiment as its experiment.json records it; "
                              f"leave out {', '.join(others)}")
        held, line, report = resume_experiment(args.resume, command, progress=getattr(args, "progress", None))
    else:
        if not args.name:
            raise ConfigError("give an experiment NAME (see `convolab reproduce --list`) or --resume DIR")
        experiment = get_experiment(args.name)
        given = given_config(args)
        stem = None if given.get("output") else f"reproduce-{experiment.name}"
        output = given.pop("output", None) or str(next_free_dir(stem))
        base = TrainConfig(model="", **({"data": experiment.data} | given))
        try:
            held, line, report = run_experiment(experiment, output, base, quick=args.quick, seeds=args.seeds,
                                                command=command, default_stem=stem)
        except EmptySplitError as err:  # (its line names --val-fraction, which reproduce does not take)
            raise DataError(err.without_val_fraction) from None
    print(f"report: {report} (curves.png and reproduce.json beside it)")
    print(line)
    return 0
