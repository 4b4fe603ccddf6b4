"""The converters' registry: `@converter(library, class_name)` and the lookup by a peer model's class."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConvolabError

_CONVERTERS: dict[tuple[str, str], Callable[[nn.Module], nn.Module]] = {}


class UnsupportedArchitectureError(ConvolabError):
    """A peer model whose architecture convolab cannot match exactly."""


def converter(library: str, class_name: str):
    """Register `fn(peer_model) -> convolab model` for models of `library`'s class `class_name`."""

    def wrap(fn: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], nn.Module]:
        _CONVERTERS[(library, class_name)] = fn
        return fn

    return wrap


def convert(library: str, model: nn.Module) -> nn.Module:
    name = type(model).__name__
    fn = _CONVERTERS.get((library, name))
    if fn is None:
        known = sorted(c for lib, c in _CONVERTERS if lib == library)
        raise UnsupportedArchitectureError(
            f"no converter for {library} model {name!r}; convolab converts: {', '.join(known)}")
    return fn(model)
