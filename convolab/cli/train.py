"""`convolab train MODEL`: train a model on a data set; `--resume RUN_DIR` continues a run."""
from __future__ import annotations

import argparse
import json
import os

import torch

from .._registry import get_entry
from ..data.stream import LOADERS
from ..errors import ConfigError
from ..training import TrainConfig, Trainer
from ..training.config import AMP_MODES, AUGMENT_MODES, TTA_MODES
from ..training.distributed import PEER_LOST, Distributed, in_torchrun, launch, lost_peer, note_lost_peer, strip_option
from ..training.engine import NonFiniteLoss, TrainingInterrupted
from ..training.optim import OPTIMIZERS, SCHEDULES
from ..training.recipes import RECIPES, recipe_values
from ._args import non_negative_float, non_negative_int, positive_float, positive_int

HELP = "train a model (default data: the embedded mnist5k digits); ends with `test accuracy: 0.xxxx`"


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every training verb shares (train, compare, finetune)."""
    d = TrainConfig(model="")
    parser.set_defaults(_parser=parser)  # to tell the options given from the defaults (see given_options)
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="a named set of option values the options "
                        "given on the command line override; fast: " + RECIPES["fast"].summary)
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=d.data, help="mnist5k, digits, mnist, fashion-mnist, cifar10, cifar100, "
                   "or an image folder / .tar / .tar.gz of one (default: %(default)s)")
    g.add_argument("--data-dir", help="where torchvision data sets live (default: ~/.cache/convolab/data)")
    g.add_argument("--download", action="store_true", help="download a torchvision data set if missing")
    g.add_argument("--image-size", type=positive_int, help="train at this size (default: the model's input size)")
    g.add_argument("--augment", choices=AUGMENT_MODES, default=d.augment,
                   help="auto: random crop and flips for colour images, none for grey digits (default: %(default)s)")
    g.add_argument("--random-erasing", type=non_negative_float, default=d.random_erasing, metavar="P")
    g.add_argument("--tta", choices=TTA_MODES, default=d.tta,
                   help="test-time augmentation: flip scores the mean of the logits of each test image and its "
                   "mirror image (default: %(default)s)")
    g.add_argument("--normalize", choices=("data", "model"), default=d.normalize,
                   help="use the data set's or the model's mean/std (default: %(default)s)")
    g.add_argument("--skip-bad-images", action="store_true", help="count and skip unreadable images")
    g.add_argument("--val-fraction", type=non_negative_float, default=d.val_fraction,
                   help="held-out fraction when an image folder has no test/ or val/ split")
    g.add_argument("--train-subset", type=positive_int, metavar="N",
                   help="train on N of the training images (every class alike, the same ones each run)")
    g.add_argument("--test-subset", type=positive_int, metavar="N", help="evaluate on N of the test images")
    g.add_argument("--loader", choices=LOADERS, default=d.loader,
                   help="image folders: cache small images once in memory, stream large ones from the files "
                   "through worker processes; auto picks by image size (default: %(default)s)")
    g.add_argument("--workers", type=non_negative_int, metavar="N",
                   help="processes decoding streamed images (default: min(8, CPUs); 0: in the main process)")
    g.add_argument("--min-crop-scale", type=positive_float, default=d.min_crop_scale, metavar="S",
                   help="streamed training images are random-resized crops of S to 1 of the image area "
                   "(default: %(default)s, as Inception)")
    g = parser.add_argument_group("optimization")
    g.add_argument("--epochs", type=positive_int, default=d.epochs, help="(default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="(default: %(default)s)")
    g.add_argument("--lr", type=positive_float,
                   help="base learning rate (default: the model's registered default, else 0.05 for sgd, "
                   "2e-3 for adam/adamw, 1e-3 for rmsprop)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer, help="(default: %(default)s)")
    g.add_argument("--momentum", type=non_negative_float, default=d.momentum)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--weight-decay", type=non_negative_float, default=d.weight_decay, help="(default: %(default)s)")
    g.add_argument("--decay-norm-and-bias", action="store_true", help="apply weight decay to norm and bias too")
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="(default: %(default)s)")
    g.add_argument("--warmup-epochs", type=non_negative_float, default=d.warmup_epochs)
    g.add_argument("--label-smoothing", type=non_negative_float, default=d.label_smoothing)
    g.add_argument("--aux-weight", type=non_negative_float,
                   help="auxiliary-head loss weight (default: the paper's, 0.3 GoogLeNet, 0.4 Inception-v3)")
    g.add_argument("--clip-grad", type=positive_float, metavar="NORM")
    g.add_argument("--ema", type=positive_float, dest="ema_decay", metavar="DECAY",
                   help="evaluate an EMA of the weights")
    g.add_argument("--patience", type=positive_int, help="early stopping after this many epochs without improvement")
    g.add_argument("--min-delta", type=non_negative_float, default=d.min_delta)
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default=d.device, help="auto, cpu or cuda (default: %(default)s)")
    g.add_argument("--amp", choices=AMP_MODES, default=d.amp, help="mixed precision (auto: bf16 on CUDA)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last,
                   help="NHWC memory format (default: on)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads of PyTorch in each process (default: PyTorch's, one per core; 1 on a "
                   "machine other jobs share, where waiting threads spin)")
    g.add_argument("--tensorboard", action="store_true", help="also log to RUN_DIR/tensorboard")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("--output", help="run folder (default: runs/MODEL-DATA[-N])")
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to the model constructor, e.g. aux_logits=false (repeatable)")
    g = parser.add_argument_group("transfer and several outputs")
    g.add_argument("--freeze-backbone", action="store_true",
                   help="train only the classifier and other heads (frozen batch norm stays in eval mode)")
    g.add_argument("--backbone-lr-scale", type=positive_float, metavar="F",
                   help="the backbone learns at F x the learning rate (the heads at 1 x)")
    g.add_argument("--loss", type=loss_weights, default={}, metavar="NAME=W,...",
                   help="loss weight per model output, e.g. main=1.0,aux1=0.3,aux2=0.3 or main=1,parity=0.5")
    g.add_argument("--extra-target", action="append", default=[], metavar="NAME",
                   help="a second target per image derived from its class, learnt by the output NAME: "
                   "parity (digits: even/odd), vehicle (CIFAR-10: animal/vehicle) (repeatable)")


def loss_weights(text: str) -> dict[str, float]:
    """`main=1.0,aux1=0.3` -> {"main": 1.0, "aux1": 0.3}."""
    weights = {}
    for pair in filter(None, text.split(",")):
        name, sep, value = pair.partition("=")
        try:
            weights[name.strip()] = non_negative_float(value) if sep and name.strip() else None
        except argparse.ArgumentTypeError:
            weights[name.strip()] = None
        if weights[name.strip()] is None:
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT pairs with weights >= 0, got {pair!r}")
    return weights


def parse_model_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value.lower() if value.lower() in ("true", "false", "null") else value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def streamed(trainer: Trainer) -> str:
    """`, streamed by N workers` for data read from the files batch by batch; empty for cached data."""
    if not trainer.streaming:
        return ""
    workers = trainer.data.workers
    return f", streamed by {workers} worker{'s' if workers != 1 else ''}" if workers else ", streamed"


def given_options(args: argparse.Namespace) -> set[str]:
    """The destinations of the options typed on the command line (not left at their defaults)."""
    parser, argv = getattr(args, "_parser", None), getattr(args, "_argv", None)
    if parser is None or argv is None:  # a Namespace built by hand: everything in it counts as given
        return set(vars(args))
    verb = argv.index(args.verb) + 1 if getattr(args, "verb", None) in argv else 0
    saved = {action: action.default for action in parser._actions}
    try:
        for action in saved:
            action.default = argparse.SUPPRESS
        given, _ = parser.parse_known_args(argv[verb:])
    finally:
        for action, default in saved.items():
            action.default = default
    return set(vars(given))


def config_from_args(args: argparse.Namespace, model: str) -> TrainConfig:
    recipe = getattr(args, "recipe", None)
    if recipe:  # the recipe's value of each option the user did not give
        args = argparse.Namespace(**(vars(args) | recipe_values(recipe, given_options(args))))
    return TrainConfig(
        model=model, data=args.data, data_dir=args.data_dir, download=args.download, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, decay_norm_and_bias=args.decay_norm_and_bias,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        aux_weight=args.aux_weight, clip_grad=args.clip_grad, ema_decay=args.ema_decay, seed=args.seed,
        device=args.device, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        image_size=args.image_size, normalize=args.normalize, augment=args.augment,
        random_erasing=args.random_erasing, tta=args.tta, recipe=recipe, patience=args.patience,
        min_delta=args.min_delta,
        output=args.output, model_options=parse_model_options(args.model_option),
        skip_bad_images=args.skip_bad_images, val_fraction=args.val_fraction, train_subset=args.train_subset,
        test_subset=args.test_subset, loader=args.loader,
        workers=args.workers, min_crop_scale=args.min_crop_scale, threads=args.threads, tensorboard=args.tensorboard,
        progress=args.progress, init_from=getattr(args, "init_from", None),
        sync_bn=getattr(args, "sync_bn", False),
        freeze_backbone=args.freeze_backbone, backbone_lr_scale=args.backbone_lr_scale,
        loss_weights=dict(args.loss), extra_targets=list(args.extra_target))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="model name (see `convolab models`)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from RUN_DIR/last.pt")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start from the weights of a checkpoint that match by name and shape (the "
                        "others are listed by name)")
    parser.add_argument("--nproc", type=positive_int, metavar="N",
                        help="data-parallel on N processes of this machine, as torchrun would start them (gloo on the "
                        "CPU, NCCL with one GPU each); --batch-size is the global batch")
    parser.add_argument("--sync-bn", action="store_true",
                        help="with several processes: batch-norm statistics over the whole global batch, "
                        "so N processes train the network of one (off: each process's share, as DDP does)")
    add_training_arguments(parser)


def launch_processes(args: argparse.Namespace) -> int:
    """Check what can be checked here, then rerun this command line in N processes without --nproc."""
    if args.resume:
        batch_size = TrainConfig.from_run(args.resume).batch_size
    else:
        get_entry(args.model)  # an unknown model fails here, not once per process
        batch_size = config_from_args(args, args.model).batch_size
    Distributed(world_size=args.nproc).check_batch_size(batch_size)
    device = TrainConfig.from_run(args.resume).device if args.resume and "device" not in given_options(args) \
        else args.device
    wants_cuda = torch.cuda.is_available() and (device.startswith("cuda") or device == "auto")
    if wants_cuda and torch.cuda.device_count() < args.nproc:  # (without CUDA, each rank says so)
        raise ConfigError(f"--nproc {args.nproc} on CUDA needs {args.nproc} GPUs (one a process), "
                          f"{torch.cuda.device_count()} visible; give --nproc {max(1, torch.cuda.device_count())} "
                          f"or --device cpu")
    return launch(args.nproc, strip_option(args._argv, "--nproc", min_prefix=4))


def run(args: argparse.Namespace) -> int:
    if not args.resume and not args.model:
        raise ConfigError("give a MODEL (see `convolab models`) or --resume RUN_DIR")
    if args.nproc and in_torchrun() and args.nproc != int(os.environ["WORLD_SIZE"]):
        raise ConfigError(f"--nproc {args.nproc} under torchrun, which started {os.environ['WORLD_SIZE']} "
                          "processes; leave --nproc out when you start torchrun yourself")
    if args.nproc and args.nproc > 1 and not in_torchrun():
        return launch_processes(args)
    try:
        return _train(args)
    except Exception as err:
        if in_torchrun() and int(os.environ["WORLD_SIZE"]) > 1 and lost_peer(err):
            note_lost_peer(err)
            return PEER_LOST  # another process failed first and said why
        raise


def _train(args: argparse.Namespace) -> int:
    if args.resume:
        runtime = {"threads": args.threads} if args.threads else {}
        trainer = Trainer.resume(args.resume, progress=args.progress, **runtime)
    else:
        trainer = Trainer(config_from_args(args, args.model))
    main = trainer.dist.is_main  # with several processes, rank 0 speaks for all
    procs = f" x {trainer.dist.world_size} processes" if trainer.dist.enabled else ""
    if main and args.resume:
        print(f"resuming {trainer.config.model} in {trainer.run_dir} at epoch {trainer.epoch + 1}, "
              f"step {trainer.step}")
    if main:
        print(f"training {trainer.config.model} on {trainer.config.data} "
              f"({len(trainer.train_labels)} train / {len(trainer.test_labels)} test images, "
              f"{trainer.data.num_classes} classes) at {trainer.image_size[0]}x{trainer.image_size[1]} "
              f"on {trainer.device}{procs}{streamed(trainer)}; run folder {trainer.run_dir}")
    try:
        result = trainer.fit()
    except (TrainingInterrupted, NonFiniteLoss):
        trainer.dist.close()  # every rank stops at the same step (the stop flag and loss are all-reduced)
        if not main:
            return 2  # rank 0 says it once
        raise
    except BaseException:
        trainer.dist.close(finished=False)  # the other ranks may never reach a barrier
        raise
    trainer.dist.close()
    if main:
        print(f"best test accuracy {result.best_acc:.4f} at epoch {result.best_epoch}; "
              f"run folder {result.run_dir}")
        print(f"test accuracy: {result.test_acc:.4f}")
    return 0
