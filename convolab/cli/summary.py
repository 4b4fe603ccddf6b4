"""`convolab summary MODEL`: per-layer output shapes, parameters and MACs, like torchinfo."""
from __future__ import annotations

import argparse
import json

import torch

from ..analysis.summary import resolve_input_size, summary
from ..models import create_model
from ._args import input_size, positive_int

HELP = "per-layer output shapes, parameters and MACs of a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name (see `convolab models`)")
    parser.add_argument("--input-size", type=input_size, default=None, metavar="C,H,W",
                        help="input size (default: the model's data_config.input_size)")
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="show modules nested at most this deep (1 = the model's children)")
    parser.add_argument("--num-classes", type=positive_int, default=None, help="passed to create_model")
    parser.add_argument("--in-chans", type=positive_int, default=None, help="passed to create_model")
    parser.add_argument("--aux-logits", action="store_true",
                        help="build the model with its auxiliary heads (they do not run in eval mode)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    options = {"aux_logits": True} if args.aux_logits else {}
    with torch.device("meta"):  # shapes and counts without allocating or initializing any weight
        model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans, **options)
    size = resolve_input_size(model, args.input_size)
    result = summary(model, size, depth=args.depth)
    print(json.dumps(result.to_dict()) if args.json else result.to_table())
    return 0
