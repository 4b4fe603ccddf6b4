"""What every timm converter shares: timm's head layers, its stand-ins for torch layers, and the pools convolab's
head cannot match."""
from __future__ import annotations

from torch import nn

from ._converters import UnsupportedArchitectureError
from ._layers import Rules

# timm's heads: SelectAdaptivePool2d's pool and flatten, and the dropout (DenseNet's, Inception's) as a layer.
HEAD_RULES: Rules = ((r"head\.pool", "global_pool.pool"), (r"head\.flatten", "global_pool.flatten"),
                     (r"head\.drop", "head_drop"))
# timm's BatchNormAct2d: a BatchNorm2d whose activation is its child `act` (checked as a layer of its own); its
# Linear (of Inception-v3's aux head): an nn.Linear that casts its weights for torchscript, same outputs.
STAND_INS = {"BatchNormAct2d": nn.BatchNorm2d, "Linear": nn.Linear}


def refuse_other_pools(peer: nn.Module) -> None:
    """A timm model whose head pools other than by averaging (global_pool='max', 'avgmax', '' ...) in one line."""
    pool_type = getattr(peer.global_pool, "pool_type", "avg")
    if pool_type != "avg":
        raise UnsupportedArchitectureError(
            f"timm {type(peer).__name__} with global_pool={pool_type!r}: convolab's head averages; "
            "build the timm model with global_pool='avg'")
