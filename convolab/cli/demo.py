"""`convolab demo NAME`: run a source article's worked example; `convolab demo --list` names them."""
from __future__ import annotations

import argparse

from ..demos import get_demo, list_demos
from ..errors import ConfigError
from ._args import positive_int

HELP = "run a worked example of the source articles (`convolab demo --list`); training demos end with " \
       "`test accuracy: 0.xxxx`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="the demo to run; without it, list the demos")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    g = parser.add_argument_group("demos that train (batchnorm, inception-mnist, resnet-mnist)")
    g.add_argument("--epochs", type=positive_int, help="epochs to train (default: the demo's own)")
    g.add_argument("--output", "--out", dest="output", metavar="DIR",
                   help="run folder (default: demo-batchnorm/ for batchnorm, runs/demo-MODEL for the others)")
    g.add_argument("--seed", type=int, help="random seed (default: 0); edge-kernel takes it too")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        demos = list_demos()
        width = max(len(d.name) for d in demos)
        for d in demos:
            print(f"{d.name:<{width}}  [{d.article}] {d.summary}")
        return 0
    demo = get_demo(args.name)
    given = {"epochs": args.epochs, "output": args.output, "seed": args.seed}
    refused = [f"--{name}" for name, value in given.items() if value is not None and name not in demo.options]
    if refused:
        takes = ", ".join(f"--{name}" for name in demo.options if name != "progress") or "no options"
        raise ConfigError(f"demo {demo.name} does not take {' or '.join(refused)}; it takes {takes} "
                          "(--epochs and --output are for the demos that train)")
    options = {name: value for name, value in given.items() if value is not None}
    if "progress" in demo.options:
        options["progress"] = args.progress
    lines = demo.run(**options)
    for line in lines:
        print(line, flush=True)
    return 0
