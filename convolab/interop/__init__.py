"""Load torchvision and timm weights into convolab models by converting their state dicts.

Each converter module here registers, with `@converter(library, class_name)`, a function taking
the peer model and returning our model of the same architecture with the weights loaded.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

from ..errors import ConvolabError

_CONVERTERS: dict[tuple[str, str], Callable[[nn.Module], nn.Module]] = {}
_loaded = False


class UnsupportedArchitectureError(ConvolabError):
    """A peer model whose architecture convolab cannot match exactly."""


def converter(library: str, class_name: str):
    """Register `fn(peer_model) -> convolab model` for models of `library`'s class `class_name`."""

    def wrap(fn: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], nn.Module]:
        _CONVERTERS[(library, class_name)] = fn
        return fn

    return wrap


def _load_converters() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


def _convert(library: str, model: nn.Module) -> nn.Module:
    _load_converters()
    name = type(model).__name__
    fn = _CONVERTERS.get((library, name))
    if fn is None:
        known = sorted(c for lib, c in _CONVERTERS if lib == library)
        raise UnsupportedArchitectureError(
            f"no converter for {library} model {name!r}; convolab converts: {', '.join(known)}")
    return fn(model)


def from_torchvision(model: nn.Module) -> nn.Module:
    """Our model of the same architecture, with the torchvision model's weights loaded."""
    return _convert("torchvision", model)


def from_timm(model: nn.Module) -> nn.Module:
    """Our model of the same architecture, with the timm model's weights loaded."""
    return _convert("timm", model)


__all__ = ["UnsupportedArchitectureError", "converter", "from_timm", "from_torchvision"]
