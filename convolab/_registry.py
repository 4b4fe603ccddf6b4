"""Model registry: `@register_model` entry points, `list_models`, `get_entry`.

Families live one per file in `convolab.models` and register themselves when `convolab.models` imports
them (it lists every family); `create_model` (convolab/models/_factory.py) builds an entry.
The registry knows no model: it sits below them.
"""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import UnknownModelError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    family: str
    aliases: tuple[str, ...] = ()
    pretrained_sources: tuple[str, ...] = field(default=())  # e.g. ("torchvision",), ("timm",)
    train_defaults: dict[str, Any] = field(default_factory=dict)  # e.g. {"lr": 0.01} where the global default fails


_ENTRIES: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, aliases: tuple[str, ...] = (),
                   pretrained: tuple[str, ...] = (), train_defaults: dict[str, Any] | None = None):
    """Register a model entry point under its function name (and any aliases).

    `train_defaults` overrides the engine's defaults for this model when the user gives none.
    """

    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        family = f.__module__.rsplit(".", 1)[-1]
        entry = ModelEntry(f.__name__, f, family, tuple(aliases), tuple(pretrained), dict(train_defaults or {}))
        if f.__name__ in _ENTRIES or f.__name__ in _ALIASES:
            raise RuntimeError(f"model {f.__name__!r} registered twice")
        _ENTRIES[f.__name__] = entry
        for alias in aliases:
            _ALIASES[alias] = f.__name__
        return f

    return wrap(fn) if fn is not None else wrap


def list_models(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Sorted names of the registered models matching a shell-style pattern, in any case ('ResNet*')."""
    names = list(_ENTRIES) + (list(_ALIASES) if include_aliases else [])
    return sorted(n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower()))


def close_names(text: str, n: int = 3) -> list[str]:
    """Up to `n` registered names and aliases spelled like `text` (a name or a pattern, whose wildcards
    are left out), closest first: the "did you mean" of an unknown name."""
    word = "".join(c for c in text.lower() if c not in "*?[]!")
    return difflib.get_close_matches(word, list(_ENTRIES) + list(_ALIASES), n=n, cutoff=0.5)


def did_you_mean(text: str) -> str:
    """"; did you mean resnet50?" for a misspelt name, "" when nothing is close."""
    close = close_names(text)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve_name(name: str) -> str:
    """The canonical name of a model or alias; an unknown name suggests the closest ones."""
    if name in _ENTRIES:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise UnknownModelError(f"unknown model {name!r}{did_you_mean(name)} (see `convolab models` for the list)")


def get_entry(name: str) -> ModelEntry:
    return _ENTRIES[resolve_name(name)]


def train_defaults(name: str) -> dict[str, Any]:
    """The training options a model registers in place of the global defaults (e.g. its lr)."""
    return dict(get_entry(name).train_defaults)
