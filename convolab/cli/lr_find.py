"""`convolab lr-find MODEL`: the learning-rate range test on a fresh run built as `convolab train` builds it."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from .._atomic import json_text
from .._registry import get_entry
from ..errors import ConfigError
from ..finetune import finetune_parts, pretrained_defaults
from ..pretrained import pretrained_checkpoint
from ..training import TrainConfig
from ..training.build import Run, build_run
from ..training.lr_find import MIN_STEPS, LRFindResult, Terminated, check_range, lr_range_test
from ..training.process import ProcessState
from ..training.rundir import data_stem, next_free_dir
from ._args import positive_float, positive_int
from ._options import add_config_options, config_from_args, flag_of, given_config
from ._weights import add_start_options, start_weights

log = logging.getLogger("convolab")

HELP = ("the learning-rate range test: train a fresh model (as `train` would build it) for --steps batches at "
        "exponentially rising learning rates; writes lr_find.csv and lr_find.png and prints the suggested lr")


# train's options that a range test has no use for: its learning rates are its own, it trains --steps batches (no
# epochs, no stopping, no schedule) and scores no test image
UNUSED = ("lr", "epochs", "schedule", "warmup_epochs", "warmup_mode", "patience", "min_delta", "monitor",
          "budget_seconds", "tta", "ema_decay", "test_subset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `convolab models`)")
    test = parser.add_argument_group("range test")
    test.add_argument("--start-lr", type=positive_float, default=1e-7, metavar="LR",
                      help="learning rate of the first step (default: %(default)g)")
    test.add_argument("--end-lr", type=positive_float, default=10.0, metavar="LR",
                      help="learning rate of the last step (default: %(default)g); the test stops early once the "
                      "smoothed loss exceeds 4 x its best")
    test.add_argument("--json", action="store_true",
                      help="print one JSON object instead of the sentence: suggestion (null where the curve "
                           "suggests none, with why; exit status 2 all the same), min_loss_lr, stopped_early, "
                           "diverged, steps and files")
    test.add_argument("--steps", type=positive_int, default=100, metavar="N",
                      help=f"training steps, one batch each (default: %(default)s; at least {MIN_STEPS})")
    # Every option of `train`, so that a training command line can be tested as it is; --lr, --epochs,
    # --schedule and --warmup-epochs are read but the test sets the learning rate of each step itself.
    add_config_options(parser, help={"epochs": "not used: the test trains --steps batches",
                                     "output": "folder for lr_find.csv and lr_find.png "
                                     "(default: runs/lr-find-MODEL-DATA[-N])"})
    add_start_options(parser, "test the run `train MODEL --pretrained` would train: MODEL with the weights "
                              "torchvision or timm publish for it, under a new head, at their input size and "
                              "statistics (fetched once into their caches)")


def run(args: argparse.Namespace) -> int:
    check_range(args.start_lr, args.end_lr, args.steps)  # before anything is loaded
    get_entry(args.model)  # an unknown model: one line, before the data
    weights = start_weights(args, [args.model])
    config = config_from_args(args, args.model)
    run = None
    if weights is not None:
        config, run = pretrained_run(pretrained_defaults(config, given_config(args), whole=True), weights)
    stem = None if config.output else f"lr-find-{args.model}-{data_stem(config.data)}"
    output = Path(config.output) if config.output else next_free_dir(stem)
    try:
        result = lr_range_test(config, args.start_lr, args.end_lr, args.steps, output=output, default_stem=stem,
                               run=run)
    except Terminated:  # as Ctrl-C, one line; the status a shell gives a process SIGTERM ended
        sys.stderr.write(f"convolab {args.verb}: interrupted by SIGTERM\n")
        return 128 + signal.SIGTERM
    output = result.output or output  # (a default name another command took first: the next one's)
    if result.suggestion is None:  # (the curve is written: it shows where the loss went)
        advice = ("give a larger --end-lr" if result.flat  # (a flat curve: a lower start cannot help)
                  else "lower --start-lr, or give more --steps")
        why = f"{result.summary()}; {advice}"
        if args.json:  # (the object a script reads, its suggestion null; the line and the exit status all the same)
            print(json_text(lr_find_json(config.model, result, output) | {"why": why}, indent=None), end="")
        raise ConfigError(f"lr-find {config.model}: {why} (the curve: {output / 'lr_find.png'})")
    unused = [flag_of(name) for name in UNUSED if name in given_config(args)]
    if unused:  # (train's options are all taken, so that a training command line can be tested as it is; said once
        # the test ran: a command refused for a bad input says that alone)
        log.warning("lr-find does not use %s: it sets each step's learning rate itself, trains --steps batches and "
                    "scores no test images", ", ".join(unused))
    if args.json:
        print(json_text(lr_find_json(config.model, result, output), indent=None), end="")
        return 0
    source = f" from {config.init_from}" if weights is not None else ""
    print(f"lr-find {config.model}{source} on {config.data} ({config.optimizer}, batch {config.batch_size}): "
          f"{result.summary()}; wrote {output / 'lr_find.csv'} and {output / 'lr_find.png'}")
    return 0


def lr_find_json(model: str, result: LRFindResult, output: Path) -> dict:
    """`--json`'s object: the suggestion and min-loss lr / 10 (null where the curve suggests none), how the test
    ended and the files written."""
    suggested = result.suggestion
    return {"model": model, "suggestion": suggested, "min_loss_lr": None if suggested is None else result.min_loss_lr,
            "stopped_early": result.stopped_early, "diverged": result.diverged, "steps": len(result.lrs),
            "files": [str(output / "lr_find.csv"), str(output / "lr_find.png")]}


def pretrained_run(config: TrainConfig, weights: bool | str) -> tuple[TrainConfig, Run]:
    """The run (no folder) `train MODEL --pretrained` would start: the model of its published weights under a new
    head, as `convolab.finetune.pretrained_trainer` builds it, and its config."""
    config, data, model = finetune_parts(pretrained_checkpoint(config.model, weights), config)
    with ProcessState(config.threads).applied(train=True):
        return config, build_run(dataclasses.replace(config, output=None, tensorboard=False), data, model, folder=False)
