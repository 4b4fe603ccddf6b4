"""`convolab predict CHECKPOINT IMAGE...`: the top-k classes of each image file."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from ..data.archive import shown
from ..data.decode import check_image_file
from ..errors import DataError
from ..training.inference import PREDICT_BATCH, Prediction, iter_predictions, load_trained_model
from ._args import CHECKPOINT, nonempty, positive_int
from ._weights import add_pretrained_options, checkpoint_or_weights, exported_model

HELP = ("classify image files with a checkpoint, a safetensors folder, an exported ONNX, TorchScript or pt2 model or a "
        "model's published weights (MODEL --pretrained): top-k classes and probabilities (and, for a labels CSV's "
        "model, each other target's class or number after a |)")
log = logging.getLogger("convolab")

BAR_FROM = 20  # images: a progress bar on a terminal from this many


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=nonempty(CHECKPOINT),
                        help="a .pt or run folder from `convolab train`; a .onnx file, TorchScript file, .pt2 "
                             "program or safetensors folder from `convolab export`; or a model name with --pretrained")
    parser.add_argument("images", nargs="+", type=nonempty("image files"), help="image files")
    parser.add_argument("--topk", type=positive_int, default=3,
                        help="classes printed per image, the most probable first, each with its probability "
                             "(default: %(default)s; more than the model's classes prints them all)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object a line, an image each (JSON Lines): file, top ([class, probability] "
                             "pairs, the most probable first) and, for a labels CSV's model, targets")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="skip files that do not read as images, named in one warning (default: every file is "
                             "checked first, and one that is no image stops the command before any line; one that "
                             "fails to decode midway, after the lines of those before it)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    classifier = exported_model(args)
    if classifier is not None:
        def score(files: list[str]) -> Iterable[Prediction]:
            return ((top, {}) for top in classifier.iter_predict_files(files, args.topk))
    else:
        loaded = load_trained_model(checkpoint_or_weights(args))

        def score(files: list[str]) -> Iterable[Prediction]:
            return iter_predictions(loaded, files, args.topk)
    list(score([]))  # (the model's own checks, a labels CSV's model of several inputs: before any file is read)
    skipped: list[tuple[str, str]] = []
    images = []
    for path in args.images:  # every file opens as an image before any is scored (a bad one last lost them all)
        try:
            check_image_file(path)
            images.append(path)
        except DataError as err:
            if not args.skip_bad_images:
                raise
            skipped.append((path, str(err)))
    if not images:  # (one line, the reasons in it: no warning before it)
        raise DataError(f"no file given read as an image ({len(skipped)} skipped): {reasons(skipped)}")
    # each line as its image is scored (a bar on a terminal for many), so that a file that fails to decode midway
    # leaves the lines of those before it
    with tqdm(total=len(images), disable=None if len(images) >= BAR_FROM else True, unit="img",
              desc="predicting", leave=False, dynamic_ncols=True, file=sys.stderr) as bar:
        for path, (top, others) in scored(images, score, skipped if args.skip_bad_images else None):
            bar.write(json_line(path, top, others) if args.json else text_line(path, top, others), file=sys.stdout)
            bar.update()
    if skipped:
        log.warning("skipped %d file%s that did not read as images: %s", len(skipped), "" if len(skipped) == 1
                    else "s", reasons(skipped))
    return 0


def reasons(skipped: list[tuple[str, str]]) -> str:
    """The first five skipped files, each with why."""
    return "; ".join(why if shown(str(path)) in why else f"{shown(str(path))}: {why}"
                     for path, why in skipped[:5]) + ("; ..." if len(skipped) > 5 else "")


def scored(images: list[str], score: Callable[[list[str]], Iterable[Prediction]],
           skipped: list[tuple[str, str]] | None) -> Iterator[tuple[str, Prediction]]:
    """Each image with its prediction, PREDICT_BATCH at a time. `skipped` (with --skip-bad-images): a batch where a
    file fails to decode (a truncated one passes the header check) is scored file by file, the failures added to
    it; else its error ends the command."""
    for start in range(0, len(images), PREDICT_BATCH):
        chunk = images[start:start + PREDICT_BATCH]
        if skipped is None:
            yield from zip(chunk, score(chunk))
            continue
        try:
            results = list(score(chunk))
        except DataError:
            for path in chunk:
                try:
                    yield from zip([path], list(score([path])))
                except DataError as err:
                    skipped.append((path, str(err)))
            continue
        yield from zip(chunk, results)


def text_line(path: str, top: list, others: dict) -> str:
    best, prob = top[0]
    rest = "  ".join(f"{shown(name)} {p:.4f}" for name, p in top[1:])
    extra = "".join(f"  | {name} {shown(str(value))}" + (f" {p:.4f}" if p is not None else "")
                    for name, (value, p) in others.items())
    return f"{shown(str(path))}  {shown(best)}  {prob:.4f}  {rest}".rstrip() + extra


def json_line(path: str, top: list, others: dict) -> str:
    """One image as one line of JSON: names as they are (no escaping for a terminal), probabilities in full."""
    line = {"file": str(path), "top": [[name, float(p)] for name, p in top]}
    if others:
        line["targets"] = {name: {"value": value if isinstance(value, str) else float(value),
                                  "probability": None if p is None else float(p)}
                           for name, (value, p) in others.items()}
    return json.dumps(line, ensure_ascii=False)
