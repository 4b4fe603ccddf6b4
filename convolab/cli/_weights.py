"""`--pretrained` / `--weights`: the verbs that take a checkpoint take a model name with published weights."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._registry import get_entry, registered_name
from ..data import read_from_here, relative_record
from ..errors import ConfigError
from ..export import ExportedClassifier, OnnxClassifier, ProgramClassifier, TorchScriptClassifier
from ..export.program import PROGRAM_SUFFIX
from ..pretrained import choose_weights, models_with_weights, pretrained_checkpoint
from ..pretrained.load import WEIGHTS_IN_CHANS
from ..training.checkpoint import is_torchscript, is_zip_archive
from ..training.safetensors_io import WEIGHTS_FILE, is_safetensors
from ._args import nonempty

TORCHSCRIPT_SUFFIX = ".torchscript.pt"  # (what `convolab export --format torchscript` writes)
# What an empty --weights is told to give instead.
WEIGHTS = "the name of published weights (`convolab models --pretrained`), or leave the option out"


def add_pretrained_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrained", action="store_true",
                        help="CHECKPOINT is a model name: use the weights torchvision or timm publish for it, "
                             "downloaded once into their caches (see `convolab models --pretrained`)")
    parser.add_argument("--weights", metavar="NAME", type=nonempty(WEIGHTS),
                        help="which published weights (implies --pretrained), e.g. IMAGENET1K_V1, tf_in1k, "
                             "torchvision, timm (default: the best published)")


def add_start_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--pretrained / --weights on a verb that builds MODEL (train, compare, lr-find, draw): `what` it does there."""
    parser.add_argument("--pretrained", action="store_true", help=what)
    parser.add_argument("--weights", metavar="NAME", type=nonempty(WEIGHTS),
                        help="which published weights (implies --pretrained), e.g. IMAGENET1K_V1, a1_in1k, "
                             "torchvision, timm (default: the best published; `convolab models --pretrained`)")


def wants_pretrained(args: argparse.Namespace) -> bool:
    return bool(args.pretrained or args.weights)


def pretrained_flag(args: argparse.Namespace) -> str:
    """--pretrained or --weights NAME, as the command line gave it."""
    return f"--weights {args.weights}" if args.weights else "--pretrained"


def start_weights(args: argparse.Namespace, models: list[str]) -> bool | str | None:
    """What --pretrained / --weights ask each run of `models` to start from (True, or a library or weights name, as
    create_model's `pretrained`), None without them. Each model's weights are looked up (their metadata: nothing is
    downloaded) before anything starts; what contradicts them is refused: --resume (a run continues from its
    last.pt), --init-from (other weights to start from), --model-option (the weights fix the model's options)."""
    if not wants_pretrained(args):
        return None
    flag = pretrained_flag(args)
    if getattr(args, "resume", None):
        raise ConfigError(f"--resume {args.resume} continues as it was started, from the weights it has trained "
                          f"(last.pt); leave out {flag}")
    if getattr(args, "init_from", None):
        raise ConfigError(f"--init-from {args.init_from} and {flag} both name the weights to start from: give one")
    if getattr(args, "model_options", None):
        raise ConfigError(f"{flag} builds the model as its weights were trained, with their options; leave out "
                          "--model-option")
    for model in models:
        name = get_entry(model).name  # (an unknown model: its own line)
        if len(models) > 1 and name not in models_with_weights():
            raise ConfigError(f"{model} has no published weights to start from (`convolab models` lists the models "
                              f"that have some in its \"weights from\" column): leave {model} out, or leave out {flag}")
        choose_weights(name, args.weights or True)  # (a model without weights, or a name not one of its weights)
    return args.weights or True


def built_as_weights(args: argparse.Namespace, model: str, options: dict[str, Any],
                     size: tuple[int, int, int] | None) -> tuple[dict[str, Any], tuple[int, int, int] | None]:
    """The model options and input size of `model` as its published weights build it (--pretrained / --weights on
    summary and draw: their options, at their input size unless `size` is given; nothing is downloaded); `options`
    and `size` as they are without those flags."""
    if not wants_pretrained(args):
        return options, size
    weights = choose_weights(get_entry(model).name, args.weights or True)
    if args.in_chans not in (None, WEIGHTS_IN_CHANS):  # as create_model(pretrained=...) refuses it
        flag = pretrained_flag(args)
        raise ConfigError(f"--in-chans {args.in_chans} does not fit {flag}: the weights {weights.label} take "
                          f"{WEIGHTS_IN_CHANS}-channel (RGB) input; leave out --in-chans, or leave out {flag} "
                          f"to see {weights.source.model} built for {args.in_chans} channel"
                          f"{'s' if args.in_chans > 1 else ''}")
    return {**weights.source.options, **options}, size or (WEIGHTS_IN_CHANS, weights.crop_size, weights.crop_size)


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


def exported_model(args: argparse.Namespace) -> ExportedClassifier | None:
    """The ONNX, TorchScript or torch.export (.pt2) file `args.checkpoint` names, loaded to run (`predict`,
    `evaluate`); None for a checkpoint, run folder, safetensors folder or published weights."""
    path = str(args.checkpoint)
    if path.lower().endswith(PROGRAM_SUFFIX) and not wants_pretrained(args):
        # (a program too, whose loading unpickles: taken only under the name `convolab export` gives it, as TorchScript)
        return ProgramClassifier(path)
    onnx = path.lower().endswith(".onnx")  # (Model.ONNX too)
    if path.lower().endswith(TORCHSCRIPT_SUFFIX) and Path(path).is_file() and not is_zip_archive(path):
        raise ConfigError(f"{path} is not a readable TorchScript file: not the zip archive `convolab export --format "
                          "torchscript` writes (truncated, corrupt or another kind of file); export the run again")
    if wants_pretrained(args) or not (onnx or is_torchscript(path)):
        return None
    if not onnx and not path.lower().endswith(TORCHSCRIPT_SUFFIX):
        # TorchScript is a program: loading one runs its code, which may write any file the user can (a colleague's
        # "best.pt" did); only a file named as `convolab export` names one is taken for one
        raise ConfigError(f"{path} is a TorchScript program, not a checkpoint, and running one runs its code; "
                          f"convolab runs one only under a name ending {TORCHSCRIPT_SUFFIX}, as `convolab export` "
                          "names it: rename it so if you trust where it came from")
    return OnnxClassifier(path) if onnx else TorchScriptClassifier(path)
