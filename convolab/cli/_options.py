"""The training verbs' options, generated from `TrainConfig`'s fields (convolab/training/config.py).

Each field declares its help, choices, bounds and group; this module turns them into argparse options
whose values are checked by the same function that checks a `TrainConfig` built from Python. An option
left out on the command line is absent from the parsed namespace (its default is `SUPPRESS`), so the
options a user gave are exactly the config values present: a recipe fills in the rest, and a resumed run
knows what was asked of it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import MISSING
from typing import Any

from ..data import absolute_source
from ..errors import ConfigError, ConvolabError, FieldError
from ..training import TrainConfig
from ..training.config import FIELDS, option_problem, option_type
from ..training.recipes import RECIPES, recipe_values


def flag_of(name: str) -> str:
    """The command-line flag of a TrainConfig field: `--epochs`, `--ema` for ema_decay."""
    return FIELDS[name].metadata["flag"] or "--" + name.replace("_", "-")


# A library message names an argument by its Python name in backquotes (`output`, `skip_bad_images`), one a flag turns
# off with its value (`memory_check=False`, the CLI's --no-memory-check): see errors.py
ARGUMENT = re.compile(r"`([a-z][a-z0-9_]*)(=False)?`")


# The library's name of an option where it is not the verb's (argparse's dest): Trainer.resume's `run_dir` is --resume,
# export_onnx's `path`, export_safetensors' `folder` (and features') --out, export_onnx's `exporter` --onnx-exporter,
# design_cost's `input_shape` cost's --input. (load_data's `source` is named `data`, TrainConfig's, in its lines.)
LIBRARY_NAMES = {"run_dir": "resume", "path": "out", "folder": "out", "exporter": "onnx_exporter",
                 "input_shape": "input"}


def flags_of(parser: argparse.ArgumentParser, aliases: bool = True) -> dict[str, str]:
    """Each option of `parser` (a verb's) by its Python name, argparse's dest: {"output": "--output",
    "ema_decay": "--ema", "progress": "--no-progress"}; with `aliases`, also by the library's names for them
    (LIBRARY_NAMES: export's --out is export_onnx's `path`)."""
    flags = {action.dest: next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])
             for action in parser._actions if action.option_strings and action.dest != "help"}
    return flags | ({name: flags[dest] for name, dest in LIBRARY_NAMES.items() if dest in flags} if aliases else {})


def as_flags(text: str, flags: Mapping[str, str]) -> str:
    """A library line as the CLI says it: each argument it names in backquotes, `output`, by its flag in `flags`,
    --output, and `memory_check=False` by --no-memory-check (an argument `flags` lacks stays as it is)."""
    def flag(match: re.Match) -> str:
        name, off = match.groups()
        found = flags.get(name)
        if found is None or bool(off) != found.startswith("--no-"):
            return match.group(0)
        return found

    return ARGUMENT.sub(flag, text)


def cli_message(err: ConvolabError, flags: Mapping[str, str] | None = None) -> str:
    """The error's line as the CLI says it: the arguments it names by their flags (a FieldError's field of
    TrainConfig by its flag; `flags`: the verb's, see flags_of)."""
    if isinstance(err, FieldError) and err.field in FIELDS:
        return as_flags(f"{flag_of(err.field)} {err.problem}", flags or {})
    return as_flags(str(err), flags or {})


def _value_parser(name: str, kind: type):
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        problem = option_problem(name, value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def field_value(name: str):
    """The argparse type of a TrainConfig field, for a verb that takes it outside add_config_options."""
    return _value_parser(name, option_type(name))


def loss_weights(text: str) -> dict[str, float]:
    """`main=1.0,aux1=0.3` -> {"main": 1.0, "aux1": 0.3}."""
    weights: dict[str, float] = {}
    for pair in filter(None, text.split(",")):
        name, sep, value = pair.partition("=")
        try:
            weight = float(value) if sep and name.strip() else -1.0
        except ValueError:
            weight = -1.0
        if not 0 <= weight < float("inf"):
            raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT pairs with weights >= 0, got {pair!r}")
        weights[name.strip()] = weight
    return weights


def column_names(text: str) -> list[str]:
    """`species,colour:class,age` -> ["species", "colour:class", "age"]."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def model_option(pair: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value): true/false/null, a whole number, a number (.5, 5., +0.5, 1e-3),
    JSON (a list, an object), else the word itself."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise ConfigError(f"--model-option expects KEY=VALUE, got {pair!r}")
    if value.lower() in ("true", "false", "null"):
        return key, json.loads(value.lower())
    for number in (int, float):
        try:
            return key, number(value)
        except ValueError:
            pass
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# Fields whose command-line form is not one value of their type.
_SPECIAL: dict[str, dict[str, Any]] = {
    "loss_weights": {"type": loss_weights},
    "model_options": {"action": "append"},
    "extra_targets": {"action": "append"},
    "targets": {"type": column_names},
    "inputs": {"type": column_names},
}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """`--model-option KEY=VALUE` for a verb that builds a model by name to look at it (summary, draw), as
    `train`'s: the model's own constructor options (`convolab models NAME` lists them)."""
    parser.add_argument("--model-option", dest="model_options", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to create_model, as train's (e.g. img_size=64 builds lenet5's head for 64 px; "
                             "`convolab models NAME` lists a model's options); repeatable")


def model_options_of(args: argparse.Namespace, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The --model-option pairs of `args` as create_model's keyword arguments; `given`: the options the verb's own
    flags set (e.g. --aux-logits, --num-classes), which a pair may not set again."""
    options = dict(model_option(pair) for pair in args.model_options)
    if taken := sorted(set(options) & set(given or {})):
        flag = f"--{taken[0].replace('_', '-')}"
        raise ConfigError(f"--model-option {taken[0]}=... sets what {flag} sets: give it as {flag} instead")
    return options


def _help(name: str, text: str) -> str:
    """A field's help as argparse shows it: its default added, the arguments it names (a recipe's summary: see
    errors.py) by their flags, and a `%` of its text (`50%`) kept as written (argparse formats help with `%`: `--help`
    failed with a TypeError)."""
    flags = {field: flag_of(field) for field in FIELDS}
    default, text = FIELDS[name].default, as_flags(text, flags).replace("%", "%%")
    if default is True and flag_of(name).startswith("--no-"):  # (the flag turns it off: "(default: on)" read as
        return text  # if the --no-X were on)
    if default is MISSING or default in (None, False, "") or "(default" in text:
        return text
    return f"{text} (default: {'on' if default is True else default})"


def add_config_options(parser: argparse.ArgumentParser, skip: Collection[str] = (), only: Collection[str] = (),
                       help: dict[str, str] | None = None, metavar: dict[str, str] | None = None) -> None:
    """An option for every command-line field of TrainConfig (or only those in `only`), in its group."""
    groups: dict[str, Any] = {}
    for name, f in FIELDS.items():
        meta = f.metadata
        if not meta["cli"] or name in skip or (only and name not in only):
            continue
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        kind, flag = option_type(name), flag_of(name)
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS,
                                  "help": _help(name, (help or {}).get(name, meta["help"]))}
        if kind is bool:  # --no-X too where X is on by default, a recipe turns it on (an option given wins) or
            # a resumed run may turn it off (a run trained with --compile, continued without)
            both = f.default is True or meta["resume"] or any(name in recipe.values for recipe in RECIPES.values())
            kwargs["action"] = ("store_false" if flag.startswith("--no-") else
                                argparse.BooleanOptionalAction if both else "store_true")
        elif name in _SPECIAL:
            kwargs.update(_SPECIAL[name])
        elif meta["choices"]:
            kwargs["choices"] = meta["choices"]
        else:
            kwargs["type"] = _value_parser(name, kind)
        if kind is not bool and (meta["metavar"] or (metavar or {}).get(name)):
            kwargs["metavar"] = (metavar or {}).get(name, meta["metavar"])
        group.add_argument(flag, **kwargs)


def given_config(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig values typed on the command line (and only those); a --data or --data-dir path
    made absolute, so that the run's config names its data from any folder (evaluate, --resume...)."""
    given = {name: getattr(args, name) for name, f in FIELDS.items() if f.metadata["cli"] and hasattr(args, name)}
    if "model_options" in given:
        given["model_options"] = dict(model_option(pair) for pair in given["model_options"])
    if isinstance(given.get("data"), str):
        given["data"] = absolute_source(given["data"])
    if isinstance(given.get("data_dir"), str) and given["data_dir"].strip():
        # (realpath: a loop of links is left for the data's loading to name; Path.resolve raised RuntimeError)
        given["data_dir"] = os.path.realpath(os.path.expanduser(given["data_dir"]))
    return given


def config_from_args(args: argparse.Namespace, model: str) -> TrainConfig:
    """The options given, over the recipe's values (`--recipe`), over TrainConfig's defaults."""
    given = given_config(args)
    return TrainConfig(model=model, **(recipe_values(given.get("recipe"), set(given)) | given))
