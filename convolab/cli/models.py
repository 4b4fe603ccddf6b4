"""`convolab models [PATTERN]`: the registered models with parameters, MACs and input size."""
from __future__ import annotations

import argparse
import json

from ..analysis.catalog import model_catalog
from ..pretrained import weights_table

HELP = "list the registered models with parameters, MACs at their input size, and loadable weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the published weights instead: model, source, weights name, published top-1, "
                             "input size (the default of each model first, marked *)")


def print_table(header: tuple[str, ...], table: list[tuple[str, ...]], right: set[int]) -> None:
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))


def run_pretrained(args: argparse.Namespace) -> int:
    rows = weights_table(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no model with published weights matches {args.pattern!r}")
        return 0
    table = [(r["model"], r["source"], r["weights"] + (" *" if r["default"] else ""),
              "-" if r["top1"] is None else f"{r['top1']:.2f}", "x".join(map(str, r["input_size"]))) for r in rows]
    print_table(("model", "source", "weights", "top-1 (published)", "input"), table, {3})
    print(f"{len(rows)} weights of {len({r['model'] for r in rows})} models; * = what --pretrained loads; top-1 on "
          "ImageNet-1k as torchvision and timm publish it")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.pretrained:
        return run_pretrained(args)
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
    print_table(header, table, {1, 2})
    print(f"{len(rows)} models; MACs = Conv2d + Linear multiply-accumulates at the input size, batch 1")
    return 0
