"""`convolab models [PATTERN]`: the registered models with parameters, MACs and input size."""
from __future__ import annotations

import argparse
import json

from ..analysis.catalog import model_catalog

HELP = "list the registered models with parameters, MACs at their input size, and loadable weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = model_catalog(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}")
        return 0
    header = ("model", "params", "MACs", "input", "weights from", "aliases")
    table = [(r["name"], f"{r['params']:,}", f"{r['macs']:,}", "x".join(map(str, r["input_size"])),
              ", ".join(r["pretrained"]) or "-", ", ".join(r["aliases"]) or "-") for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    right = {1, 2}
    for line in (header, *table):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))
    print(f"{len(rows)} models; MACs = Conv2d + Linear multiply-accumulates at the input size, batch 1")
    return 0
