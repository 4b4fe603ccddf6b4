"""`create_model`: a registered entry built, and optionally cut into its feature maps or its first stages."""
from __future__ import annotations

import inspect
import math
import re
from typing import Any

import torch
from torch import nn

from .._registry import get_entry
from ..errors import ConfigError
from ._base import check_img_size, check_in_chans, check_num_classes
from ._features import features_only as feature_maps
from ._features import truncate


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
    check_cuts(features_only, out_indices)
    if num_classes is not None:
        kwargs["num_classes"] = check_num_classes(num_classes)
    if in_chans is not None:
        kwargs["in_chans"] = check_in_chans(in_chans)
    check_option_types(entry.name, entry.fn, kwargs)
    if kwargs.get("img_size") is not None:  # most entries take it behind **kwargs, unseen by the type check
        kwargs["img_size"] = check_img_size(kwargs["img_size"])
    try:
        model = entry.fn(**kwargs)
    except ConfigError:  # already one line that names the option
        raise
    except (TypeError, ValueError, RuntimeError) as err:  # an option the model does not take, or a bad value
        # (RuntimeError: torch's own, a layer of a negative or zero width)
        takes = ", ".join(option_names(entry.name))
        raise ConfigError(f"cannot build {entry.name} with {kwargs}: {build_failure(err)}"
                          + (f" (its options: {takes})" if "keyword argument" in str(err) and takes else "")) from None
    model.model_name = entry.name
    if "model_options" not in vars(model):  # (a builder may record its own, as multitask does)
        # what it was built with beside its classes and channels, so that a checkpoint of it rebuilds it
        model.model_options = {k: v for k, v in kwargs.items() if k not in ("num_classes", "in_chans")}
    options = model.model_options
    if until is not None:
        model = truncate(model, until)
        model.model_options = {**options, "until": until}  # (create_model(..., until=...) rebuilds it)
    if features_only:
        model = feature_maps(model, out_indices)
    return model


def check_cuts(features_only: Any, out_indices: Any) -> None:
    """`features_only` a bool, and `out_indices` with it only (alone, the classifier was built and the stages asked
    for went unseen; timm refuses it as an unexpected keyword)."""
    if not isinstance(features_only, bool):
        raise ConfigError(f"features_only must be True or False, got {features_only!r}")
    if out_indices is not None and not features_only:
        raise ConfigError(f"out_indices {out_indices!r} chooses the stages of a features_only model: give "
                          "features_only=True too, or leave out out_indices")


def build_failure(err: Exception) -> str:
    """Why a builder failed, in one line: a layer too large to make (an img_size of 10**11: torch's "Overflow
    when unpacking long long" or "Storage size calculation overflowed", or an allocation that failed) in plain
    words, anything else as its first line."""
    text = str(err).strip()
    if "Overflow when unpacking" in text or "size calculation overflowed" in text:
        return "a layer would hold more values than a tensor can (its size overflows); give smaller options"
    if isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in text:
        asked = re.search(r"allocate (\d+) bytes", text)
        need = f" ({int(asked[1]) / 2**30:,.0f} GiB)" if asked else ""
        return f"its layers would need more memory than can be allocated{need}; give smaller options"
    return text.splitlines()[0] if text else type(err).__name__


_KINDS = ((bool, "true or false"), (int, "a whole number"), (float, "a number"), (str, "a word"))
# Options that builders of the zoo take behind **kwargs (their signature shows no default to check against): the
# values each takes, [low, high] (None: unbounded). Before, `drop_rate=x` was "'<' not supported between 'str'
# and 'int'".
_RANGES: dict[str, tuple[type, float, float | None, str]] = {
    "drop_rate": (float, 0.0, 1.0, "a number in [0, 1]"),
    "head_drop_rate": (float, 0.0, 1.0, "a number in [0, 1]"),
    "aux_drop_rate": (float, 0.0, 1.0, "a number in [0, 1]"),
}


def check_option_types(name: str, fn: Any, kwargs: dict[str, Any]) -> None:
    """An option whose default is a bool, a whole number, a number or a word takes a value of that kind
    (a whole number where a number is expected), and no option is NaN or infinite: said in one line, before
    the constructor fails on it."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        return
    for key, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}'s option {key} must be a finite number, got {value!r}")
        if key in _RANGES:
            kind, low, high, words = _RANGES[key]
            number = type(value) in ((int, float) if kind is float else (int,))
            if not number or value < low or (high is not None and value > high):
                raise ConfigError(f"{name}'s option {key} takes {words}, got {value!r}")
        default = params[key].default if key in params else None
        kind = next(((t, words) for t, words in _KINDS if type(default) is t), None)
        if kind is None or value is None:
            continue
        expected, words = kind
        fits = type(value) is expected or (expected is float and type(value) is int)
        if not fits:
            raise ConfigError(f"{name}'s option {key} takes {words} (default {default!r}), got {value!r}")


TAKEN = ("num_classes", "in_chans")  # create_model's own arguments, not a model's options


def option_names(name: str) -> list[str]:
    """The options (`--model-option KEY=VALUE`) a registered model takes beyond its classes and channels: its
    builder's keyword arguments with their defaults (`img_size=28`), and, where the builder passes the rest on to its
    network's class (**kwargs), that class's (by name alone: the builder may set their values itself)."""
    fn = get_entry(name).fn
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    own = [f"{p.name}={p.default!r}" for p in params if p.default is not p.empty and p.name not in TAKEN]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        with torch.device("meta"):  # (nothing allocated: the class is what is read)
            network = type(fn())
        named = {o.split("=")[0] for o in own}
        own += [p.name for p in inspect.signature(network.__init__).parameters.values()
                if p.default is not p.empty and p.name not in TAKEN and p.name not in named]
    return own

