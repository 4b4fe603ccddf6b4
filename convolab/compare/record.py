"""The records `--resume` continues from: a comparison's compare.json and an experiment's experiment.json.

Each is read and checked whole before anything is written: a file edited by hand or damaged (not UTF-8, not JSON,
a field of the wrong kind) is one line naming the file and the field, not a traceback nor a record half-rewritten.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from .._registry import resolve_name
from ..errors import ConfigError, ConvolabError
from ..training import TrainConfig
from .seeds import seed_values


def _shown(value: Any) -> str:
    """`value` as the file spells it, cut to a readable length."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class Record:
    """The JSON document at `path`, a dict marked `form`; `remedy` says what to do when it is edited or damaged."""

    def __init__(self, path: Path, form: str, verb: str, remedy: str):
        self.path, self.remedy = path, remedy
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
            self.refuse(f"it is not readable JSON text ({str(err).splitlines()[0][:80]})")
        if not isinstance(state, dict):
            self.refuse(f"it holds a JSON {type(state).__name__}, not the object `convolab {verb}` writes")
        if state.get("format") != form:
            raise ConfigError(f"{path} is not a `convolab {verb}` record (no '{form}' marker); give the `output` "
                              f"folder of a `convolab {verb}`")
        self.state: dict[str, Any] = state

    def refuse(self, problem: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {problem}; the file was edited or damaged: {self.remedy}") from None

    def bad(self, key: str, wanted: str) -> NoReturn:
        self.refuse(f"its {key!r} is {_shown(self.state[key])}, not {wanted}" if key in self.state
                    else f"it has no {key!r}")

    def get(self, key: str, kind: type, wanted: str, default: Any = ...) -> Any:
        """state[key], which must be a `kind` (`default` when absent, where one is given)."""
        if key not in self.state and default is not ...:
            return default
        value = self.state.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.bad(key, wanted)
        return value

    def strings(self, key: str, empty: bool = True) -> list[str]:
        values = self.get(key, list, "a list of strings", default=[] if empty else ...)
        if not all(isinstance(v, str) and v for v in values) or not (empty or values):
            self.bad(key, "a list of strings" if empty else "a non-empty list of names")
        return list(values)

    def config(self) -> TrainConfig:
        values = self.get("config", dict, "the object of a run's options")
        try:
            return TrainConfig.from_record(values)
        except (ConvolabError, TypeError, ValueError) as err:  # (a FieldError names its field)
            self.refuse(f"its 'config': {str(err).splitlines()[0][:120]}")


def read_comparison(path: Path, form: str) -> tuple[list[str], list[int], TrainConfig, str, list[str], dict[str, str]]:
    """compare.json's models, seeds, config, command, resumed_by and statuses, each checked."""
    record = Record(path, form, "compare", "restore it from a copy, or run the comparison again into a new `output`")
    models = record.strings("models", empty=False)
    canonical = []
    for name in models:
        try:
            canonical.append(resolve_name(name))
        except ConvolabError as err:
            record.refuse(f"its 'models' lists {name!r}: {err}")
    if len(set(canonical)) < len(canonical):
        record.bad("models", "a list naming each model once")
    config = record.config()
    seeds = record.get("seeds", list, "a list of seed values", default=[config.seed])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        record.bad("seeds", "a list of whole numbers")
    try:
        seeds = seed_values(seeds, config.seed)
    except ConfigError as err:
        record.refuse(f"its 'seeds': {err}")
    command = record.get("command", str, "the command line (a string)")
    resumed_by = record.strings("resumed_by")
    statuses = record.get("statuses", dict, "an object of each run's status", default={})
    if not all(isinstance(v, str) for v in statuses.values()):
        record.bad("statuses", "an object of each run's status (strings)")
    return models, seeds, config, command, resumed_by, dict(statuses)


def read_experiment(path: Path, form: str) -> tuple[dict[str, Any], TrainConfig]:
    """experiment.json, checked (experiment and command strings, quick true or false, seeds a count, config a run's
    options, resumed_by a list of commands), and its config as a TrainConfig."""
    record = Record(path, form, "reproduce", "start the experiment again in a new folder")
    record.get("experiment", str, "an experiment's name")
    record.get("quick", bool, "true or false")
    config = record.config()
    seeds = record.get("seeds", int, "a number of seeds (a whole number >= 1)")
    try:
        seed_values(seeds, config.seed)
    except ConfigError as err:
        record.refuse(f"its 'seeds': {err}")
    record.get("command", str, "the command line (a string)")
    return {**record.state, "resumed_by": record.strings("resumed_by")}, config
