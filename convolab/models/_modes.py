"""Train/eval modes of a model's modules, kept across a call that switches them."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def modes_kept(model: nn.Module) -> Iterator[None]:
    """Restore each module's own mode on exit, also on an exception: `model.train(was)` would set every
    descendant to `was`, training a BatchNorm the caller had frozen with `.eval()`."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
