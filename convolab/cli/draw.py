"""`convolab draw MODEL --out FILE.svg`: a picture of the architecture, branches side by side."""
from __future__ import annotations

import argparse

import torch

from ..analysis.draw import draw
from ..analysis.summary import SizeArgs, resolve_input_size
from ..models import create_model
from ._args import class_count, input_size, nonempty, positive_int
from ._options import add_model_options, model_options_of
from ._weights import add_start_options, built_as_weights

HELP = "draw a model's architecture as SVG (branches side by side, joins visible)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (see `convolab models`)")
    parser.add_argument("--out", required=True, metavar="FILE.svg", type=nonempty("a file name such as model.svg"),
                        help="where to write the SVG (required)")
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="draw modules nested deeper than this as one box (default: every layer)")
    parser.add_argument("--input-size", type=input_size, default=None, metavar="C,H,W",
                        help="input size for the shapes (default: the model's data_config.input_size)")
    parser.add_argument("--num-classes", type=class_count, default=None,
                        help="passed to create_model (0: the features, no classifier)")
    parser.add_argument("--in-chans", type=positive_int, default=None, help="passed to create_model")
    add_model_options(parser)
    add_start_options(parser, "the model as its published weights build it: their options, classes and input size "
                              "(nothing is downloaded), as `summary MODEL --pretrained`")


def run(args: argparse.Namespace) -> int:
    options = model_options_of(args, {"num_classes": None, "in_chans": None})
    options, size = built_as_weights(args, args.model, options, args.input_size)
    with torch.device("meta"):  # shapes only: no weights are allocated or initialized
        model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, **options)
    size = resolve_input_size(model, size)
    # (a size refused as too large names the argument it came from: --input-size, --in-chans, --num-classes)
    given = SizeArgs(args.input_size is not None, args.in_chans, args.num_classes, options.get("img_size"))
    graph = draw(model, size, args.out, depth=args.depth, given=given)
    print(f"wrote {args.out}: {len(graph.nodes)} nodes, {len(graph.edges)} edges")
    return 0
