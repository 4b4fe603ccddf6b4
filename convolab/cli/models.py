"""`convolab models [PATTERN]`: the registered models with parameters, MACs and input size."""
from __future__ import annotations

import argparse
import json

from .._registry import did_you_mean, list_models
from ..analysis.catalog import model_catalog
from ..errors import UnknownModelError
from ..models import option_names
from ..pretrained import weights_table

HELP = "list the registered models with parameters, MACs at their input size, and loadable weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", nargs="?", default="*",
                        help="a model name or alias, or a shell-style filter such as 'resnet*', in any case; "
                             "one that matches no model is an error naming the closest")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    parser.add_argument("--pretrained", action="store_true",
                        help="list the published weights instead: model, source, weights name, published top-1, "
                             "input size (the default of each model first, marked *)")


def print_table(header: tuple[str, ...], table: list[tuple[str, ...]], right: set[int]) -> None:
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))))


def check_matches(pattern: str) -> None:
    """An UnknownModelError (exit 2, as for an unknown model in any verb) when `pattern` matches no model
    name or alias, naming the closest."""
    if not list_models(pattern, include_aliases=True):
        raise UnknownModelError(f"no model matches {pattern!r}{did_you_mean(pattern)} "
                                "(`convolab models` lists them all)")


def run_pretrained(args: argparse.Namespace) -> int:
    check_matches(args.pattern)
    rows = weights_table(args.pattern.lower())  # (every registered name is lower case)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"no model with published weights matches {args.pattern!r}")
        return 0
    table = [(r["model"], r["source"], r["weights"] + (" *" if r["default"] else ""),
              "-" if r["top1"] is None else f"{r['top1']:.2f}", "x".join(map(str, r["input_size"]))) for r in rows]
    print_table(("model", "source", "weights", "top-1 (published)", "input"), table, {3})
    models = len({r["model"] for r in rows})
    print(f"{len(rows)} weights of {models} model{'' if models == 1 else 's'}; * = what --pretrained loads; top-1 on "
          "ImageNet-1k as torchvision and timm publish it")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.pretrained:
        return run_pretrained(args)
    check_matches(args.pattern)
    rows = model_catalog(args.pattern)
    if len(rows) == 1:  # one model: its options too (what summary's and draw's --model-option help points to)
        rows[0]["options"] = option_names(rows[0]["name"])
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    header = ("model", "params", "MACs", "input", "weights from", "aliases")
    table = [(r["name"], figure(r["params"]), figure(r["macs"]),
              "x".join(map(str, r["input_size"])) if r["input_size"] else "-",
              ", ".join(r["pretrained"]) or "-", ", ".join(r["aliases"]) or "-") for r in rows]
    print_table(header, table, {1, 2})
    print(f"{len(rows)} model{'s' if len(rows) != 1 else ''}; MACs = Conv2d + Linear multiply-accumulates at the "
          "input size, batch 1")
    if "options" in rows[0]:
        print(f"options (--model-option KEY=VALUE): {', '.join(rows[0]['options']) or 'none'}")
    for r in rows:
        if r["note"]:
            print(f"- {r['name']}: {r['note']}")
    return 0


def figure(count: int | None) -> str:
    """A count with thousands separators, "-" where it could not be computed."""
    return "-" if count is None else f"{count:,}"
