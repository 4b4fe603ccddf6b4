"""Model registry: `@register_model` entry points, `list_models`, `get_entry`.

Families live one per file in `convolab.models` and register themselves when `convolab.models` imports
them (it lists every family); `create_model` (convolab/models/_factory.py) builds an entry.
The registry knows no model: it sits below them.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import ConfigError, RegistryError, UnknownModelError, way_on


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    family: str
    aliases: tuple[str, ...] = ()
    pretrained_sources: tuple[str, ...] = field(default=())  # e.g. ("torchvision",), ("timm",)
    train_defaults: dict[str, Any] = field(default_factory=dict)  # e.g. {"lr": 0.01} where the global default fails
    layout_changes: dict[int, str] = field(default_factory=dict)  # revision (2, 3...) -> what it changed
    layout_from: str | None = None  # the option naming the registered model whose layout this one has

    @property
    def layout(self) -> int:
        """The layout revision: 1, plus one for each change to what the same weights compute."""
        return 1 + len(self.layout_changes)


_ENTRIES: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


# The train_defaults keys the engine reads: `lr` (TrainConfig.base_lr, where --lr is not given) and `aux_weight`
# (the auxiliary heads' loss weight, where --aux-weight is not given). Any other key would be ignored.
TRAIN_DEFAULT_KEYS = ("lr", "aux_weight")


def register_model(fn: Callable[..., nn.Module] | None = None, *, aliases: str | tuple[str, ...] = (),
                   pretrained: str | tuple[str, ...] = (), train_defaults: dict[str, Any] | None = None,
                   layout_changes: dict[int, str] | None = None, layout_from: str | None = None):
    """Register a model entry point under its function name (and any aliases: a name or a tuple of names).

    Layout revision: a model is at revision 1 until a change makes the same weights compute something else
    (a stride moved, a shortcut rewired) without changing a tensor's shape; `layout_changes` then says, for
    each later revision from 2 on, what it changed: `{2: "the stride on the first 1x1"}` puts the model at
    revision 2. Checkpoints record the revision, and one of an older revision is refused rather than loaded
    into layers that would compute something else. A model built around another registered model (multitask's
    `backbone`) gives `layout_from="backbone"`: its layout is that model's.

    `train_defaults` replaces the engine's default for this model where the user gives none, for the keys
    in `TRAIN_DEFAULT_KEYS` only: `lr` (a number > 0) and `aux_weight` (the auxiliary heads' loss weight,
    a number >= 0). A name or alias already taken is refused (RegistryError), except the same function
    registered again from the same module (a re-run notebook cell, `importlib.reload`), which replaces it.
    """
    alias_names = _names("aliases", aliases)
    sources = _names("pretrained", pretrained)
    defaults = _checked_train_defaults(train_defaults)
    changes = _checked_layout(layout_changes, layout_from)

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = f.__name__
        old = _ENTRIES.get(name)
        replaced = old if old is not None and _same_function(old.fn, f) else None
        for key in (name, *alias_names):
            _check_free(key, name, f, replaced)
        if len(set(alias_names)) < len(alias_names) or name in alias_names:
            raise RegistryError(f"model {name!r} (in {f.__module__}): aliases={alias_names} repeats a name (an alias "
                                "twice, or the model's own name); give each alias once")
        if replaced is not None:
            for alias in replaced.aliases:
                del _ALIASES[alias]
        _ENTRIES[name] = ModelEntry(name, f, f.__module__.rsplit(".", 1)[-1], alias_names, sources, defaults,
                                    changes, layout_from)
        for alias in alias_names:
            _ALIASES[alias] = name
        return f

    return wrap(fn) if fn is not None else wrap


def _names(argument: str, value: str | tuple[str, ...]) -> tuple[str, ...]:
    """`aliases`/`pretrained` as a tuple of names: a single string is one name, not one per character."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise RegistryError(f"register_model's {argument} must be a name or a tuple of names, got {value!r}")
    return names


def _checked_train_defaults(train_defaults: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of `train_defaults`, refused where a key is one the engine does not read or a value is no
    positive (`lr`) or non-negative (`aux_weight`) number."""
    defaults = dict(train_defaults or {})
    if unknown := sorted(set(defaults) - set(TRAIN_DEFAULT_KEYS)):
        raise RegistryError(f"register_model's train_defaults has {', '.join(map(repr, unknown))}, which training "
                            f"does not read; the keys it takes are {', '.join(TRAIN_DEFAULT_KEYS)} (give other "
                            "options in TrainConfig or on the command line)")
    for key, value in defaults.items():
        number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value < 0 or (key == "lr" and value == 0):
            bound = "> 0" if key == "lr" else ">= 0"
            raise RegistryError(f"register_model's train_defaults {key} must be a number {bound}, got {value!r}")
    return defaults


def _checked_layout(changes: dict[int, str] | None, layout_from: str | None) -> dict[int, str]:
    """A copy of `layout_changes`, refused unless it notes revisions 2, 3, ... each once, in words."""
    changes = dict(changes or {})
    if sorted(changes) != list(range(2, 2 + len(changes))) or not all(
            isinstance(note, str) and note.strip() for note in changes.values()):
        raise RegistryError(f"register_model's layout_changes must map each revision from 2 on (2, 3, ...) to a note "
                            f"of what it changed, got {changes!r}")
    if layout_from is not None and (changes or not isinstance(layout_from, str) or not layout_from):
        raise RegistryError(f"register_model's layout_from must name the option that names the model built around "
                            f"(e.g. 'backbone'), and excludes layout_changes; got {layout_from!r}")
    return changes


def current_layout(name: str, options: dict[str, Any] | None = None) -> tuple[str, int, dict[int, str]]:
    """The model whose layout a model `name` built with `options` has (itself, or the one its `layout_from`
    option names), that model's current revision and its notes; a name not registered here: revision 1."""
    canonical = registered_name(name)
    if canonical is None:
        return name, 1, {}
    entry = _ENTRIES[canonical]
    if entry.layout_from is not None:
        inner = (options or {}).get(entry.layout_from, _default(entry.fn, entry.layout_from))
        if isinstance(inner, str) and registered_name(inner) is not None and registered_name(inner) != canonical:
            return current_layout(inner)
    return entry.name, entry.layout, dict(entry.layout_changes)


def _default(fn: Callable[..., nn.Module], option: str) -> Any:
    """The default of `fn`'s parameter `option` (a record need not list an option left at its default)."""
    try:
        parameter = inspect.signature(fn).parameters.get(option)
    except (TypeError, ValueError):
        return None
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def _same_function(old: Callable[..., nn.Module], new: Callable[..., nn.Module]) -> bool:
    """Whether `new` is `old` defined again: the same qualified name in the same module (a reload)."""
    return _defined_at(old) == _defined_at(new)


def _defined_at(fn: Callable[..., nn.Module]) -> tuple[str, str]:
    return getattr(fn, "__module__", ""), getattr(fn, "__qualname__", getattr(fn, "__name__", ""))


def _check_free(key: str, name: str, f: Callable[..., nn.Module], replaced: ModelEntry | None) -> None:
    """A RegistryError where `key` (the new model's name or one of its aliases) is already another model's
    name or alias; the model being registered again (`replaced`) gives its own back."""
    owner = _ENTRIES.get(key) or (_ENTRIES[_ALIASES[key]] if key in _ALIASES else None)
    if owner is None or owner is replaced:
        return
    if key == name and key in _ENTRIES:
        raise RegistryError(f"model {name!r} (in {f.__module__}) registered twice: {owner.fn.__module__} registered "
                            "it first; give your function another name (the same function registered again from "
                            "the same module, as a reload does, replaces it)")
    taken = "the name of" if key in _ENTRIES else "an alias of"
    what = "name" if key == name else "alias"
    raise RegistryError(f"model {name!r} (in {f.__module__}): its {what} {key!r} is already {taken} {owner.name} "
                        f"(registered by {owner.fn.__module__}); give another {what}")


def list_models(pattern: str | Sequence[str] = "*", include_aliases: bool = False, pretrained: bool | str = False,
                exclude_filters: str | Sequence[str] = ()) -> list[str]:
    """Names of the registered models matching a shell-style pattern, in any case ('ResNet*'), or any of several
    (['resnet1*', 'densenet*']), "" matching all, and none of `exclude_filters`, as timm's list_models takes them,
    in timm's natural order (resnet18 before resnet101); with `pretrained`, only those that load published weights
    (`pretrained_sources`; an alias counts as its model), or of one source ("torchvision", "timm")."""
    patterns, excluded = _patterns(pattern) or ["*"], _patterns(exclude_filters)
    sources = sorted({s for e in _ENTRIES.values() for s in e.pretrained_sources})
    if not isinstance(pretrained, bool) and pretrained not in sources:
        raise RegistryError(f"list_models' pretrained is True, False or a source ({', '.join(sources)}), got "
                            f"{pretrained!r}")

    def matches(name: str, among: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in among)

    def weighted(name: str) -> bool:
        own = _ENTRIES[_ALIASES.get(name, name)].pretrained_sources
        return not pretrained or (pretrained in own if isinstance(pretrained, str) else bool(own))

    names = list(_ENTRIES) + (list(_ALIASES) if include_aliases else [])
    return sorted((n for n in names if matches(n, patterns) and not matches(n, excluded) and weighted(n)),
                  key=natural_key)


def natural_key(name: str) -> list:
    """The order of names timm lists in: numbers as numbers (resnet18, resnet20, resnet101)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _patterns(given: str | Sequence[str]) -> list[str]:
    """A pattern or several as a list ("" and [] none), each a string (one line otherwise)."""
    patterns = list(given) if isinstance(given, (list, tuple, set, frozenset)) else [given]
    if not all(isinstance(p, str) for p in patterns):
        raise RegistryError(f"list_models takes a pattern or a list of patterns (strings), got {given!r}")
    return [p for p in patterns if p]


def close_names(text: str, n: int = 3) -> list[str]:
    """Up to `n` registered names and aliases spelled like `text` (a name or a pattern, whose wildcards
    are left out), closest first: the "did you mean" of an unknown name."""
    word = "".join(c for c in text.lower() if c not in "*?[]!")
    return difflib.get_close_matches(word, list(_ENTRIES) + list(_ALIASES), n=n, cutoff=0.5)


def did_you_mean(text: str) -> str:
    """"; did you mean resnet50?" for a misspelt name, "" when nothing is close."""
    close = close_names(text)
    return f"; did you mean {', '.join(close)}?" if close else ""


def is_builtin(name: str) -> bool:
    """Whether `name` is a model convolab itself registers (one the `convolab` command knows in any process),
    not one registered by a user's module or of no registered name."""
    canonical = registered_name(name)
    return canonical is not None and _ENTRIES[canonical].fn.__module__.startswith("convolab.")


def registered_name(name: str) -> str | None:
    """The canonical name of a model or alias, in any case (as `convolab models` matches and torchvision's
    get_model), or None for a name not registered."""
    for spelling in (name, name.lower()):
        if spelling in _ENTRIES:
            return spelling
        if spelling in _ALIASES:
            return _ALIASES[spelling]
    return None


def resolve_name(name: str) -> str:
    """The canonical name of a model or alias; an unknown name suggests the closest ones. A name that is not a
    string (None, a list of names) is one line too, not an AttributeError from str methods below."""
    if not isinstance(name, str):
        raise ConfigError(f"model name must be a string (a registered name or alias: see convolab.list_models()), "
                          f"got {type(name).__name__} {name!r:.60}")
    if (found := registered_name(name)) is not None:
        return found
    raise UnknownModelError(f"unknown model {name!r}{did_you_mean(name)} ({models_listed()})")


def models_listed() -> str:
    """Where a line sends its user for the models' names: `convolab models`, or from Python list_models()."""
    return way_on("`convolab models` lists them", "convolab.list_models() lists them")


def get_entry(name: str) -> ModelEntry:
    """The registry's entry of a model or alias (any case); an unknown name is refused as `resolve_name` does."""
    return _ENTRIES[resolve_name(name)]


def train_defaults(name: str) -> dict[str, Any]:
    """The training options a model registers in place of the global defaults (e.g. its lr)."""
    return dict(get_entry(name).train_defaults)
