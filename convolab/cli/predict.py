"""`convolab predict CHECKPOINT IMAGE...`: the top-k classes of each image file."""
from __future__ import annotations

import argparse

from ..export import predict_onnx
from ..training.inference import load_trained_model, predict_targets
from ._args import CHECKPOINT, nonempty, positive_int
from ._weights import add_pretrained_options, checkpoint_or_weights, wants_pretrained

HELP = ("classify image files with a checkpoint, a safetensors folder, an exported .onnx model or a model's "
        "published weights (MODEL --pretrained): top-k classes and probabilities (and, for a labels CSV's model, "
        "each other target's class or number after a |)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=nonempty(CHECKPOINT),
                        help="a .pt or run folder from `convolab train`, a .onnx or safetensors folder from "
                             "`convolab export`, or a model name with --pretrained")
    parser.add_argument("images", nargs="+", type=nonempty("image files"), help="image files")
    parser.add_argument("--topk", type=positive_int, default=3, help="(default: %(default)s)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    if str(args.checkpoint).lower().endswith(".onnx") and not wants_pretrained(args):  # (Model.ONNX too)
        results = [(top, {}) for top in predict_onnx(args.checkpoint, args.images, top_k=args.topk)]
    else:
        results = predict_targets(load_trained_model(checkpoint_or_weights(args)), args.images, args.topk)
    for path, (top, others) in zip(args.images, results):
        best, prob = top[0]
        rest = "  ".join(f"{name} {p:.4f}" for name, p in top[1:])
        extra = "".join(f"  | {name} {value}" + (f" {p:.4f}" if p is not None else "")
                        for name, (value, p) in others.items())
        print(f"{path}  {best}  {prob:.4f}  {rest}".rstrip() + extra)
    return 0
