"""`convolab demo NAME`: run a source article's worked example; `convolab demo --list` names them."""
from __future__ import annotations

import argparse

from ..demos import get_demo, list_demos
from ..errors import ConfigError
from ..reproduce import get_experiment, run_experiment
from ..training import TrainConfig
from ..training.rundir import next_free_dir
from ._args import nonempty, positive_int
from ._options import field_value

# Demos that became experiments of `convolab reproduce`: the old name runs the experiment's quick form on the
# offline data it names.
MOVED = {"batchnorm": ("002", "mnist5k")}

HELP = "run a worked example of the source articles (`convolab demo --list`); training demos end with " \
       "`test accuracy: 0.xxxx`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", type=nonempty("a demo name (`convolab demo --list`)"),
                        help="the demo to run; without it, list the demos")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    g = parser.add_argument_group("demos that train (inception-mnist, resnet-mnist; batchnorm: see reproduce)")
    g.add_argument("--epochs", type=positive_int, help="epochs to train (default: the demo's own)")
    g.add_argument("--output", "--out", dest="output", metavar="DIR",
                   type=nonempty("a folder, or leave the option out"),
                   help="run folder (default: runs/demo-MODEL, or -2, -3... beside an existing one; batchnorm: "
                        "runs/demo-batchnorm[-N])")
    g.add_argument("--seed", type=field_value("seed"), metavar="SEED",
                   help="random seed (default: 0); edge-kernel takes it too")
    g.add_argument("--threads", type=field_value("threads"), metavar="N",
                   help="PyTorch's CPU threads (default: one per core others leave free, as train's)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        demos = list_demos()
        width = max(len(d.name) for d in demos)
        for d in demos:
            print(f"{d.name:<{width}}  [{d.article}] {d.summary}")
        for name, (article, data) in MOVED.items():
            print(f"{name:<{width}}  [{article}] moved to `convolab reproduce {name}`; this name runs its quick form "
                  f"on {data}")
        return 0
    if args.name in MOVED:
        return run_moved(args)
    demo = get_demo(args.name, moved=MOVED)  # (a typo of a moved name is told its name)
    given = {"epochs": args.epochs, "output": args.output, "seed": args.seed, "threads": args.threads}
    refused = [f"--{name}" for name, value in given.items() if value is not None and name not in demo.options]
    if refused:
        takes = ", ".join(f"--{name}" for name in demo.options if name != "progress") or "no options"
        raise ConfigError(f"demo {demo.name} does not take {' or '.join(refused)}; it takes {takes} "
                          "(--epochs, --output and --threads are for the demos that train)")
    options = {name: value for name, value in given.items() if value is not None}
    if "progress" in demo.options:
        options["progress"] = args.progress
    lines = demo.run(**options)
    for line in lines:
        print(line, flush=True)
    return 0


def run_moved(args: argparse.Namespace) -> int:
    """A demo that is now an experiment of `convolab reproduce`: its quick form, on offline data."""
    experiment, (_, data) = get_experiment(args.name), MOVED[args.name]
    if args.epochs is not None:
        raise ConfigError(f"demo {args.name} is now `convolab reproduce {args.name}`, which runs the experiment's own "
                          f"schedule: drop --epochs")
    print(f"demo {args.name} is now `convolab reproduce {args.name}`; running its quick form on {data}", flush=True)
    base = TrainConfig(model="", data=data, seed=args.seed or 0, progress=args.progress, threads=args.threads)
    stem = None if args.output else f"demo-{args.name}"
    output = args.output or str(next_free_dir(stem))
    _, line, report = run_experiment(experiment, output, base, quick=True, command=f"convolab demo {args.name}",
                                     default_stem=stem)
    print(f"report: {report} (curves.png and reproduce.json beside it)")
    print(line)
    return 0
