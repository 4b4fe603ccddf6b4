"""`convolab cost --input CxHxW LAYER... [--versus LAYER...]`: the cost of a block design."""
from __future__ import annotations

import argparse
import json
import logging

from ..analysis.cost import (
    DESIGN_EXAMPLE,
    DESIGN_FORM,
    MAX_TENSOR_BYTES,
    compare_designs,
    design_cost,
    format_comparison,
    format_design,
    gib,
)
from ._args import input_size

log = logging.getLogger("convolab")

HELP = ("multiplications and parameters of a chain of convolutions, against another design (arithmetic only: "
        f"nothing is allocated; a tensor above {gib(MAX_TENSOR_BYTES)} is refused as no device could run it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("design", nargs="+", metavar="LAYER",
                        help=f"convolutions in order, each {DESIGN_FORM} ({DESIGN_EXAMPLE}); 'same' padding "
                             "unless /pP is given")
    parser.add_argument("--input", type=input_size, required=True, metavar="CxHxW",
                        help="input channels, height and width, e.g. 192x28x28")
    parser.add_argument("--versus", nargs="+", metavar="LAYER", default=None,
                        help="a second design on the same input, to compare against")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    c, h, w = args.input
    if c == h and w > h:  # (28x28x192: the articles' H x W x C, read as 28 channels of 28x192 pixels)
        log.warning("--input %dx%dx%d is read as C x H x W: %d channels of %dx%d pixels; for %d channels of %dx%d "
                    "(H x W x C, as the articles write it) give --input %dx%dx%d", c, h, w, c, h, w, w, c, h, w, c, h)
    if args.versus:
        comparison = compare_designs(args.input, args.design, args.versus)
        if args.json:
            print(json.dumps({"design": comparison.design.to_dict(), "versus": comparison.versus.to_dict(),
                              "comparison": comparison.to_dict()}))
        else:
            print(format_comparison(comparison))
    else:
        cost = design_cost(args.input, args.design)
        print(json.dumps(cost.to_dict()) if args.json else format_design(cost))
    return 0
