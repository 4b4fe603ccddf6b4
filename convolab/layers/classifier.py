"""Classifier heads: global pool -> flatten -> dropout -> linear, the end of most networks."""
from __future__ import annotations

import torch
from torch import nn

from ._checks import check_channels


class ClassifierHead(nn.Module):
    """Global average pool, dropout and a linear layer; `num_classes=0` gives pooled features."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0, pool: bool = True):
        super().__init__()
        check_channels("ClassifierHead", in_features=in_features)
        _check_num_classes(num_classes)
        self.in_features = in_features
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else nn.Identity()
        self.flatten = nn.Flatten(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        """A fresh final layer on the device and dtype of the one it replaces; a head without one (num_classes 0)
        has nothing to take them from, and its new layer is float32 on the CPU (`ConvNet.reset_classifier` moves it
        where the model lives: call that on a model)."""
        _check_num_classes(num_classes)
        old = next(self.fc.parameters(), None)
        fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()
        self.fc = fc.to(old.device, old.dtype) if old is not None else fc

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """N x in_features x H x W (pool=False: N x in_features, already pooled) -> N x num_classes logits;
        `pre_logits`: the pooled N x in_features features, after dropout, without the linear layer."""
        x = self.drop(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)


def _check_num_classes(num_classes: int) -> None:
    """0 classes is the head's "pooled features"; fewer is a mistake (a Linear would refuse it only when run)."""
    if num_classes < 0:
        raise ValueError(f"ClassifierHead: num_classes must be >= 0 (0: the pooled features, no linear layer), "
                         f"got {num_classes}")
