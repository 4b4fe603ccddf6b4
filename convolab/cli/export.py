"""`convolab export CHECKPOINT --format onnx|torchscript`: a checked inference file from a trained model."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..export import export_onnx, export_torchscript, model_from_checkpoint
from ..export.exporters import RTOL, TOLERANCE
from ._args import non_negative_float, positive_float, positive_int

HELP = "export a trained model to ONNX or TorchScript (batch norm folded, checked against PyTorch)"

SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run folder or a .pt checkpoint written by `convolab train`")
    parser.add_argument("--format", choices=tuple(SUFFIXES), default="onnx", help="(default: %(default)s)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=positive_int, help="fix the batch size of the exported model")
    batch.add_argument("--dynamic-batch", action="store_true",
                       help="any batch size (the default when --batch-size is not given)")
    parser.add_argument("--out", help="output file (default: next to the checkpoint, e.g. RUN/best.onnx)")
    parser.add_argument("--tolerance", type=positive_float, default=TOLERANCE,
                        help="absolute part of the difference from PyTorch accepted (default: %(default)g)")
    parser.add_argument("--rtol", type=non_negative_float, default=RTOL,
                        help="relative part: each image's logits may also differ by this times its largest "
                             "|logit|, float32 round-off in deep nets (default: %(default)g)")
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="keep batch norms as they are instead of folding them into the convolutions")


def default_output(checkpoint: str, fmt: str) -> Path:
    path = Path(checkpoint)
    if path.is_dir():
        path = path / ("best.pt" if (path / "best.pt").is_file() else "last.pt")
    return path.with_name(path.name.removesuffix(".pt") + SUFFIXES[fmt])


def run(args: argparse.Namespace) -> int:
    model, meta = model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else default_output(args.checkpoint, args.format)
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
