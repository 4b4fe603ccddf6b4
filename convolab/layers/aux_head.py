"""Auxiliary classifiers: the side heads GoogLeNet and Inception-v3 attach to a middle stage.

They only add a training loss; `ConvNet.forward` never runs them, `forward_outputs` does.
"""
from __future__ import annotations

import torch
from torch import nn

from .conv_norm_act import ConvBlock


class GoogLeNetAux(nn.Module):
    """pool to 4x4 -> 1x1 conv 128 -> FC 1024 -> ReLU -> dropout -> FC classes (GoogLeNet Sec. 5).

    `pool="avg"` is the paper's 5x5/3 average pool (14 -> 4); `pool="adaptive"` is torchvision's
    adaptive average pool to 4x4, which bins 14 pixels differently (same shapes, other numbers).
    The paper's pool gives 4x4 only from a 14-16 pixel grid, i.e. GoogLeNet at about 224x224.
    """

    def __init__(self, in_channels: int, num_classes: int, conv_block: ConvBlock, pool: str = "avg",
                 drop_rate: float = 0.7):
        super().__init__()
        if pool not in ("avg", "adaptive"):
            raise ValueError(f"pool must be 'avg' or 'adaptive', not {pool!r}")
        self.pool = nn.AvgPool2d(5, stride=3) if pool == "avg" else nn.AdaptiveAvgPool2d(4)
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # aux1: N x 512 x 14 x 14, aux2: N x 528 x 14 x 14
        x = self.conv(self.pool(x))
        # N x 128 x 4 x 4
        x = self.drop(self.act(self.fc1(self.flatten(x))))
        # N x 1024
        return self.fc2(x)


class InceptionV3Aux(nn.Module):
    """avg pool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> global pool -> FC classes (v3 Fig. 8).

    Needs a grid of at least 17x17 (Mixed_6e at 299x299 input), as torchvision's.
    """

    def __init__(self, in_channels: int, num_classes: int, conv_block: ConvBlock):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = conv_block(in_channels, 128, kernel_size=1)
        self.conv1 = conv_block(128, 768, kernel_size=5, padding=0)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17
        x = self.conv0(self.pool(x))
        # N x 128 x 5 x 5
        x = self.conv1(x)
        # N x 768 x 1 x 1
        return self.fc(self.flatten(self.global_pool(x)))
