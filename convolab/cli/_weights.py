"""`--pretrained` / `--weights`: the verbs that take a checkpoint take a model name with published weights."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._registry import registered_name
from ..data import read_from_here, relative_record
from ..errors import ConfigError
from ..pretrained import pretrained_checkpoint
from ..training.safetensors_io import WEIGHTS_FILE, is_safetensors
from ._args import nonempty

# What an empty --weights is told to give instead.
WEIGHTS = "the name of published weights (`convolab models --pretrained`), or leave the option out"


def add_pretrained_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", action="store_true",
                        help="CHECKPOINT is a model name: use the weights torchvision or timm publish for it, "
                             "downloaded once into their caches (see `convolab models --pretrained`)")
    parser.add_argument("--weights", metavar="NAME", type=nonempty(WEIGHTS),
                        help="which published weights (implies --pretrained), e.g. IMAGENET1K_V1, tf_in1k, "
                             "torchvision, timm (default: the best published)")


def wants_pretrained(args: argparse.Namespace) -> bool:
    return bool(args.pretrained or args.weights)


def checkpoint_or_weights(args: argparse.Namespace) -> str | dict[str, Any]:
    """`args.checkpoint` as given (a file or folder), or the record of the published weights it names."""
    if wants_pretrained(args):
        if Path(args.checkpoint).exists() and registered_name(args.checkpoint) is None:
            flag = f"--weights {args.weights}" if args.weights else "--pretrained"
            raise ConfigError(f"{flag} names a model's published weights, but {args.checkpoint} is a file or folder: "
                              f"drop {flag.split()[0]} to use it, or give a model name")
        return pretrained_checkpoint(args.checkpoint, args.weights or True)
    if not Path(args.checkpoint).exists() and registered_name(args.checkpoint) is not None:  # (an alias, any case)
        raise ConfigError(f"{args.checkpoint} is a model name, not a checkpoint: add --pretrained for the weights "
                          "torchvision or timm publish for it (`convolab models --pretrained`), or give a checkpoint "
                          "file or run folder")
    return args.checkpoint


def data_of(args: argparse.Namespace, checkpoint: dict[str, Any], what: str) -> str:
    """The data a verb reads: --data, else the data the checkpoint's run was trained on. Published weights were
    trained on ImageNet, which convolab does not load (it said "unknown data set 'imagenet'", a name never given):
    --data is needed, and `what` says what it should hold."""
    if args.data:
        return args.data
    if checkpoint.get("weights"):
        raise ConfigError(f"{args.checkpoint}'s published weights were trained on ImageNet, which convolab does not "
                          f"load: give --data, {what}")
    recorded = str(checkpoint.get("data", "mnist5k"))
    if relative_record(recorded):
        return read_from_here(recorded, args.checkpoint, "give --data")
    return recorded


def given_checkpoint(text: str) -> Path:
    """The checkpoint a verb was given, as a path to write beside: a safetensors folder for its weights file (its
    model.safetensors), a folder named `.` or `..` resolved (it has a name, and a parent)."""
    path = Path(text).expanduser()
    path = path.resolve() if path.name in ("", "..") else path
    if path.name == WEIGHTS_FILE and is_safetensors(path.parent):  # the weights of a safetensors folder
        path = path.parent
    return path


def output_beside(args: argparse.Namespace, name: str) -> Path:
    """Where a verb's default output goes: beside the checkpoint (in a run folder: RUN/name), `SF-name` beside a
    safetensors folder SF (never inside it, as `export` writes beside it), `MODEL-name` here for published weights."""
    if wants_pretrained(args):
        return Path(f"{args.checkpoint}-{name}")
    path = given_checkpoint(args.checkpoint)
    if path.is_dir() and is_safetensors(path):
        return path.with_name(f"{path.name}-{name}")
    return (path if path.is_dir() else path.parent) / name
