"""Model registry: `@register_model` entry points, `list_models`, `create_model`.

Families live one per file in `convolab.models`; they are imported on the first lookup, so
`import convolab` stays cheap and no module has to list the others.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .errors import ConfigError, UnknownModelError


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
_families_loaded = False


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


def _load_families() -> None:
    global _families_loaded
    if _families_loaded:
        return
    from . import models

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{models.__name__}.{info.name}")
    _families_loaded = True


def list_models(pattern: str = "*", include_aliases: bool = False) -> list[str]:
    """Sorted names of the registered models matching a shell-style pattern."""
    _load_families()
    names = list(_ENTRIES) + (list(_ALIASES) if include_aliases else [])
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def resolve_name(name: str) -> str:
    """The canonical name of a model or alias; an unknown name suggests the closest ones."""
    _load_families()
    if name in _ENTRIES:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, list(_ENTRIES) + list(_ALIASES), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}{hint} (see `convolab models` for the list)")


def get_entry(name: str) -> ModelEntry:
    return _ENTRIES[resolve_name(name)]


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 **options: Any) -> nn.Module:
    """Build a registered model; `None` leaves the model's own default.

    `features_only=True` (with `out_indices`) gives the feature maps of the chosen stages as a
    list; `until=LAYER` keeps the layers up to LAYER under a fresh head (see models/_features.py).
    """
    entry = get_entry(name)
    kwargs = dict(options)
    features_only = kwargs.pop("features_only", False)
    out_indices = kwargs.pop("out_indices", None)
    until = kwargs.pop("until", None)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    try:
        model = entry.fn(**kwargs)
    except (TypeError, ValueError) as err:  # an option the model does not take, or a bad value
        raise ConfigError(f"cannot build {entry.name} with {kwargs}: {err}") from None
    model.model_name = entry.name
    if until is not None or features_only:
        from .models._features import features_only as feature_maps
        from .models._features import truncate

        if until is not None:
            model = truncate(model, until)
        if features_only:
            model = feature_maps(model, tuple(out_indices) if out_indices is not None else None)
    return model
