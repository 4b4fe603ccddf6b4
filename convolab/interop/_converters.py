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
    """`library`'s `model` as convolab's, by the converter of its class; a model of another library (ResNet and
    DenseNet are class names in timm, torchvision and convolab alike) is refused in one line naming the right one."""
    name = type(model).__name__
    origin = type(model).__module__.partition(".")[0]
    if origin != library and origin in ("timm", "torchvision", "convolab"):
        where = f"{type(model).__module__}.{name}"
        way = "it needs no converting" if origin == "convolab" else f"convert it with `from_{origin}`"
        raise UnsupportedArchitectureError(f"from_{library} was given a model of {origin}'s ({where}): {way}")
    fn = _CONVERTERS.get((library, name))
    if fn is None:
        known = sorted(c for lib, c in _CONVERTERS if lib == library)
        raise UnsupportedArchitectureError(
            f"no converter for {library} model {name!r}; convolab converts: {', '.join(known)}")
    return fn(model)
