"""Load torchvision and timm weights into convolab models by converting their state dicts.

Each converter module here registers (in _converters.py), with `@converter(library, class_name)`, a function taking
the peer model and returning our model of the same architecture with the weights loaded.
"""
from __future__ import annotations

from torch import nn

from . import timm_inception, timm_resnet, torchvision_inception, torchvision_resnet  # noqa: F401  (they register)
from ._converters import UnsupportedArchitectureError, convert, converter


def from_torchvision(model: nn.Module) -> nn.Module:
    """Our model of the same architecture, with the torchvision model's weights loaded."""
    return convert("torchvision", model)


def from_timm(model: nn.Module) -> nn.Module:
    """Our model of the same architecture, with the timm model's weights loaded."""
    return convert("timm", model)


__all__ = ["UnsupportedArchitectureError", "converter", "from_timm", "from_torchvision"]
