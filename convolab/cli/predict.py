"""`convolab predict CHECKPOINT IMAGE...`: the top-k classes of each image file."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm

from ..data.archive import shown
from ..data.decode import check_image_file
from ..training.inference import PREDICT_BATCH, Prediction, iter_predictions, load_trained_model
from ._args import CHECKPOINT, nonempty, positive_int
from ._weights import add_pretrained_options, checkpoint_or_weights, exported_model

HELP = ("classify image files with a checkpoint, a safetensors folder, an exported ONNX or TorchScript model or a "
        "model's published weights (MODEL --pretrained): top-k classes and probabilities (and, for a labels CSV's "
        "model, each other target's class or number after a |)")


BAR_FROM = 20  # images: a progress bar on a terminal from this many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=nonempty(CHECKPOINT),
                        help="a .pt or run folder from `convolab train`; a .onnx file, TorchScript file or "
                             "safetensors folder from `convolab export`; or a model name with --pretrained")
    parser.add_argument("images", nargs="+", type=nonempty("image files"), help="image files")
    parser.add_argument("--topk", type=positive_int, default=3,
                        help="classes printed per image, the most probable first, each with its probability "
                             "(default: %(default)s; more than the model's classes prints them all)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    results: Iterable[Prediction]
    classifier = exported_model(args)
    if classifier is not None:
        results = ((top, {}) for start in range(0, len(args.images), PREDICT_BATCH)
                   for top in classifier.predict_files(args.images[start:start + PREDICT_BATCH], args.topk))
    else:
        results = iter_predictions(load_trained_model(checkpoint_or_weights(args)), args.images, args.topk)
    for path in args.images:  # every file opens as an image before any is scored (a bad one last lost them all)
        check_image_file(path)
    # each line as its image is scored (a bar on a terminal for many), so that a file that fails to decode midway
    # leaves the lines of those before it
    with tqdm(total=len(args.images), disable=None if len(args.images) >= BAR_FROM else True, unit="img",
              desc="predicting", leave=False, dynamic_ncols=True, file=sys.stderr) as bar:
        for path, (top, others) in zip(args.images, results):
            best, prob = top[0]
            rest = "  ".join(f"{shown(name)} {p:.4f}" for name, p in top[1:])
            extra = "".join(f"  | {name} {shown(str(value))}" + (f" {p:.4f}" if p is not None else "")
                            for name, (value, p) in others.items())
            bar.write(f"{shown(str(path))}  {shown(best)}  {prob:.4f}  {rest}".rstrip() + extra, file=sys.stdout)
            bar.update()
    return 0
