"""`convolab summary MODEL`: per-layer output shapes, parameters, MACs and kernels, like torchinfo."""
from __future__ import annotations

import argparse
import inspect
import json

import torch

from ..analysis.summary import SizeArgs, resolve_input_size, summary
from ..errors import ConfigError
from ..models import create_model, get_entry
from ._args import class_count, input_size, nonempty, positive_int
from ._options import add_model_options, model_options_of
from ._weights import WEIGHTS, built_as_weights

HELP = "per-layer output shapes, parameters, MACs and kernels (window, stride, padding) of a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (see `convolab models`)")
    parser.add_argument("--input-size", type=input_size, default=None, metavar="C,H,W",
                        help="input size (default: the model's data_config.input_size)")
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="show modules nested at most this deep (1 = the model's children)")
    parser.add_argument("--num-classes", type=class_count, default=None,
                        help="passed to create_model (0: the features, no classifier)")
    parser.add_argument("--in-chans", type=positive_int, default=None, help="passed to create_model")
    parser.add_argument("--aux-logits", action="store_true",
                        help="build the model with its auxiliary heads (they do not run in eval mode)")
    add_model_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--pretrained", action="store_true",
                        help="the model as its published weights build it: their options, classes and input size "
                             "(nothing is downloaded)")
    parser.add_argument("--weights", metavar="NAME", type=nonempty(WEIGHTS),
                        help="which published weights (implies --pretrained)")


def run(args: argparse.Namespace) -> int:
    options = {"aux_logits": True} if args.aux_logits else {}
    options.update(model_options_of(args, {**options, "num_classes": args.num_classes, "in_chans": args.in_chans}))
    if args.aux_logits and "aux_logits" not in inspect.signature(get_entry(args.model).fn).parameters:
        raise ConfigError(f"{args.model} has no auxiliary heads; leave out --aux-logits (googlenet, googlenet_tv "
                          "and inception_v3 have them)")
    options, size = built_as_weights(args, args.model, options, args.input_size)
    with torch.device("meta"):  # shapes and counts without allocating or initializing any weight
        model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, **options)
    # (a size refused as too large names the argument it came from: --input-size, --in-chans, --num-classes)
    given = SizeArgs(args.input_size is not None, args.in_chans, args.num_classes, options.get("img_size"))
    size = resolve_input_size(model, size)
    result = summary(model, size, depth=args.depth, given=given)
    print(json.dumps(result.to_dict()) if args.json else result.to_table())
    return 0
