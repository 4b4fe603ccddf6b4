"""`convolab export CHECKPOINT --format onnx|torchscript|safetensors`: a checked inference file (or weights
folder) from a trained model or a model's published weights."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..export import export_onnx, export_safetensors, export_torchscript, model_from_checkpoint
from ..export.exporters import RTOL, TOLERANCE
from ._args import non_negative_float, positive_float, positive_int
from ._weights import add_pretrained_options, checkpoint_or_weights

HELP = ("export a trained model to ONNX or TorchScript (batch norm folded, checked against PyTorch), or its "
        "weights to a safetensors folder (model.safetensors + config.json, no pickle)")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": "-safetensors"}  # the last: a folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run folder or a .pt checkpoint written by `convolab train`, a "
                        "safetensors folder, or a model name with --pretrained")
    parser.add_argument("--format", choices=tuple(SUFFIXES), default="onnx", help="(default: %(default)s)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=positive_int, help="fix the batch size of the exported model")
    batch.add_argument("--dynamic-batch", action="store_true",
                       help="any batch size (the default when --batch-size is not given)")
    parser.add_argument("--out", help="output file, or folder for safetensors (default: next to the checkpoint, "
                        "e.g. RUN/best.onnx, RUN/best-safetensors; MODEL.onnx here with --pretrained)")
    parser.add_argument("--tolerance", type=positive_float, default=TOLERANCE,
                        help="absolute part of the difference from PyTorch accepted (default: %(default)g)")
    parser.add_argument("--rtol", type=non_negative_float, default=RTOL,
                        help="relative part: each image's logits may also differ by this times its largest "
                             "|logit|, float32 round-off in deep nets (default: %(default)g)")
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="keep batch norms as they are instead of folding them into the convolutions")
    add_pretrained_options(parser)


def default_output(args: argparse.Namespace, fmt: str) -> Path:
    if args.pretrained or args.weights:
        return Path(args.checkpoint + SUFFIXES[fmt])  # here, named after the model
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / ("best.pt" if (path / "best.pt").is_file() else "last.pt")
    return path.with_name(path.name.removesuffix(".pt") + SUFFIXES[fmt])


def run(args: argparse.Namespace) -> int:
    source = checkpoint_or_weights(args)
    out = Path(args.out) if args.out else default_output(args, args.format)
    if args.format == "safetensors":
        saved = export_safetensors(source, out)
        print(f"wrote {', '.join(map(str, saved.files))} (safetensors, {saved.model_name}, {saved.tensors} tensors; "
              f"read back: the same outputs, largest difference {saved.max_abs_diff:.3g})")
        return 0
    model, meta = model_from_checkpoint(source)
    export = export_onnx if args.format == "onnx" else export_torchscript
    result = export(model, out, (meta.in_chans, *meta.image_size), batch_size=args.batch_size or 1,
                    dynamic_batch=args.batch_size is None, meta=meta, fold=args.fold,
                    tolerance=args.tolerance, rtol=args.rtol)
    batch = "any batch size" if args.batch_size is None else f"batch size {args.batch_size}"
    size = "x".join(map(str, (meta.in_chans, *meta.image_size)))
    print(f"wrote {result.path} ({args.format}, {meta.model_name}, input {size}, {batch}, "
          f"{result.folded_bn} batch norms folded)")
    print(f"largest difference from PyTorch: {result.max_abs_diff:.3g} ({result.max_rel_diff:.3g} of the "
          f"image's largest logit; batch sizes {', '.join(map(str, result.batch_sizes_checked))})")
    return 0
