"""The `convolab` command. Each verb is a module here with `HELP`, `add_arguments(parser)` and
`run(args) -> int`; the CLI only parses and calls the library.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from types import ModuleType

from ..errors import ConvolabError


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr and exit code 2 (argparse adds a usage block)."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _verbs() -> dict[str, ModuleType]:
    verbs = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            verbs[info.name.replace("_", "-")] = module
    return verbs


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = OneLineParser(prog="convolab", description="Classic convolutional networks: build, "
                           "inspect, train, compare, fine-tune, export.")
    parser.add_argument("--version", action="version", version=f"convolab {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=OneLineParser)
    sub.required = True
    for name, module in sorted(_verbs().items()):
        verb_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # for verbs that relaunch themselves
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args._run(args) or 0)
    except ConvolabError as err:
        sys.stderr.write(f"convolab {args.verb}: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"convolab {args.verb}: interrupted\n")
        return 130
