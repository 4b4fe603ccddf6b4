"""`convolab train MODEL`: train a model on a data set; `--resume RUN_DIR` continues a run."""
from __future__ import annotations

import argparse
import logging

import torch

from .._platform import usable_cores
from .._registry import get_entry
from ..errors import ConfigError, FieldError
from ..finetune import pretrained_defaults, pretrained_trainer
from ..training import TrainConfig, Trainer
from ..training.build import mixing_for
from ..training.config import resumable_options
from ..training.distributed import Distributed, in_torchrun, launch_env
from ..training.engine import NonFiniteLoss, TrainingInterrupted
from ..training.final_test import split_sizes, unscored
from ..training.resume_checks import resume_changes
from ..training.rundir import refuse_to_overwrite_a_run
from ._args import positive_int
from ._launch import PEER_LOST, launch, lost_peer, note_lost_peer, strip_option
from ._options import add_config_options, config_from_args, flag_of, given_config
from ._results import closing_lines
from ._weights import add_start_options, start_weights, wants_pretrained

log = logging.getLogger("convolab")
HELP = "train a model (default data: the embedded mnist5k digits); ends with `test accuracy: 0.xxxx`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="model name (see `convolab models`)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue a run from RUN_DIR/last.pt; it takes only the options that leave what it "
                        "has trained valid (" + ", ".join(flag_of(n) for n in resumable_options()) +
                        "), any other is refused; --epochs N extends it, its schedule becoming that of a run of "
                        "N epochs")
    parser.add_argument("--nproc", type=positive_int, metavar="N",
                        help="data-parallel on N processes of this machine, as torchrun would start them (gloo on the "
                        "CPU, NCCL with one GPU each); --batch-size is the global batch")
    add_config_options(parser)
    add_start_options(parser, "start from the weights torchvision or timm publish for MODEL (fetched once into "
                              "their caches; `convolab models --pretrained`): a new head for the data's classes, "
                              "their input size and --normalize model by default, every layer trained by the run's "
                              "own recipe (`finetune MODEL --pretrained` freezes or slows the backbone)")


def resumed_config(args: argparse.Namespace) -> tuple[TrainConfig, dict]:
    """The config of the run in --resume and the changes asked of it (each one a resumed run can take)."""
    if args.model:
        raise ConfigError(f"--resume {args.resume} continues that run's own model; leave out MODEL ({args.model})")
    config = TrainConfig.from_run(args.resume)
    changes = resume_changes(args.resume, config, given_config(args))
    config.resumed_with(changes)  # one line naming the flag that cannot change
    return config, changes


def new_run_config(args: argparse.Namespace) -> TrainConfig:
    """The config of a new run, whose --output must not hold a run already (from published weights: their
    normalization unless --normalize is given)."""
    config = config_from_args(args, args.model)
    refuse_to_overwrite_a_run(config.output)
    if wants_pretrained(args):
        config = pretrained_defaults(config, given_config(args), whole=True)
    return config


def launch_processes(args: argparse.Namespace) -> int:
    """Check what can be checked here, then rerun this command line in N processes without --nproc."""
    if args.resume:
        config, changes = resumed_config(args)
        config = config.resumed_with(changes)
    else:
        get_entry(args.model)  # an unknown model fails here, not once per process
        config = new_run_config(args)
    processes = Distributed(world_size=args.nproc)
    processes.check_batch_size(config.batch_size, resumed=bool(args.resume))
    mixing_for(config, processes)  # each process's share of the batch mixes (refused before the data are read)
    wants_cuda = torch.cuda.is_available() and (config.device.startswith("cuda") or config.device == "auto")
    if wants_cuda and torch.cuda.device_count() < args.nproc:  # (without CUDA, each rank says so)
        raise ConfigError(f"--nproc {args.nproc} on CUDA needs {args.nproc} GPUs (one a process), "
                          f"{torch.cuda.device_count()} visible; give --nproc {max(1, torch.cuda.device_count())} "
                          f"or --device cpu")
    if not wants_cuda and args.nproc > (cores := usable_cores()):  # (not refused: each rank is still one of N)
        log.warning("--nproc %d is more than the %d CPU%s this process may use: the %d processes take turns on "
                    "them, one thread each, and train no faster than --nproc %d would", args.nproc, cores,
                    "s" if cores != 1 else "", args.nproc, cores)
    return launch(args.nproc, strip_option(args._argv, "--nproc", min_prefix=4))


def run(args: argparse.Namespace) -> int:
    if not args.resume and not args.model:
        raise ConfigError("give a MODEL (see `convolab models`) or --resume RUN_DIR")
    start_weights(args, [args.model] if args.model else [])  # (--resume or --init-from with them: one line, now)
    if args.nproc and in_torchrun() and args.nproc != launch_env("WORLD_SIZE", 1):
        raise ConfigError(f"--nproc {args.nproc} under torchrun, which started {launch_env('WORLD_SIZE', 1)} "
                          "processes; leave --nproc out when you start torchrun yourself")
    if args.nproc and args.nproc > 1 and not in_torchrun():
        return launch_processes(args)
    try:
        return _train(args)
    except Exception as err:
        if in_torchrun() and launch_env("WORLD_SIZE", 1) > 1 and lost_peer(err):
            note_lost_peer(err)
            return PEER_LOST  # another process failed first and said why
        raise


def _resume(args: argparse.Namespace) -> Trainer:
    config, changes = resumed_config(args)
    trainer = Trainer.resume(args.resume, **changes)
    if trainer.epoch >= trainer.config.epochs and unscored(args.resume) and not changes:
        # (a run whose scoring of its unseen test split was stopped, or whose test.json could not be written)
        if trainer.dist.is_main:
            print(f"scoring {args.resume}'s best.pt on the test split it kept unseen (the run is complete)")
        return trainer
    if trainer.epoch >= trainer.config.epochs:
        raise FieldError("epochs", f"is {trainer.config.epochs} and {args.resume} has trained {trainer.epoch} "
                         f"epochs: the run is complete; give --epochs N with N > {trainer.epoch} to train it further")
    if trainer.dist.is_main:
        changed = ", ".join(f"{flag_of(k)} {_as_flag(k, getattr(config, k))!r} -> {_as_flag(k, v)!r}"
                            for k, v in changes.items() if getattr(config, k) != v)
        print(f"resuming {trainer.config.model} in {trainer.run_dir} at epoch {trainer.epoch + 1}, "
              f"step {trainer.step}" + (f"; changed: {changed}" if changed else ""))
    return trainer


def _as_flag(name: str, value: object) -> object:
    """A field's value as its flag reads it: --no-progress True where the field `progress` is False."""
    return not value if isinstance(value, bool) and flag_of(name).startswith("--no-") else value


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        trainer = _resume(args)
    elif wants_pretrained(args):  # (checked by `run`: start_weights)
        trainer = pretrained_trainer(new_run_config(args), pretrained=args.weights or True)
    else:
        trainer = Trainer(new_run_config(args))
    main = trainer.dist.is_main  # with several processes, rank 0 speaks for all
    procs = f" x {trainer.dist.world_size} processes" if trainer.dist.enabled else ""
    source = f" from {trainer.config.init_from}" if wants_pretrained(args) else ""
    if main:
        print(f"training {trainer.config.model}{source} on {trainer.config.data} "
              f"({split_sizes(trainer.data)}, "
              f"{trainer.data.num_classes} classes) at {trainer.image_size[0]}x{trainer.image_size[1]} "
              f"on {trainer.device}{procs}{trainer.run.batches.describe()}; run folder {trainer.run_dir}")
        if hasattr(trainer.data, "describe"):  # a labels CSV: its targets and inputs
            print(trainer.data.describe())
    try:
        result = trainer.fit()  # (with several processes, each leaves the process group as it ends)
    except (TrainingInterrupted, NonFiniteLoss) as err:
        if not main:  # every rank stopped at the same step; rank 0 says why, once
            return 128 + err.signum if isinstance(err, TrainingInterrupted) else 2
        raise
    if main:
        print("\n".join(closing_lines(trainer, result)))
    return 0
