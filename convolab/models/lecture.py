"""The two MNIST networks of the source lecture (article 000, "PyTorch deep learning practice",
lecture 11): a net of two InceptionA modules and a net of two residual blocks, for 1 x 28 x 28.

Both keep the lecture's order conv -> max-pool -> ReLU and its plain biased convolutions (no BN).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import register_model
from ..layers import ClassifierHead
from ..layers.checkpointing import Checkpointed
from ._base import MNIST_MEAN, MNIST_STD, ConvNet, FeatureInfo, data_config_for


class InceptionA(Checkpointed, nn.Module):
    """The lecture's Inception module: 1x1 (16), 1x1 -> 5x5 (24), 1x1 -> 3x3 -> 3x3 (24) and
    avg-pool -> 1x1 (24) branches, concatenated: 88 channels at the input's H and W."""

    out_channels = 16 + 24 + 24 + 24

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, 1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, 1)
        self.branch5x5_2 = nn.Conv2d(16, 24, 5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, 1)
        self.branch3x3_2 = nn.Conv2d(16, 24, 3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, 3, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)                                          # N x 16 x H x W
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))                      # N x 24 x H x W
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))   # N x 24 x H x W
        branch_pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))  # N x 24 x H x W
        return torch.cat([branch1x1, branch5x5, branch3x3, branch_pool], dim=1)  # N x 88 x H x W


class ResidualBlock(Checkpointed, nn.Module):
    """The lecture's residual block: y = relu(conv3x3(x)); y = conv3x3(y); relu(x + y), channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(x + y)


class InceptionMnist(ConvNet):
    """Conv(in,10,5) -> pool -> ReLU -> InceptionA(10) -> Conv(88,20,5) -> pool -> ReLU -> InceptionA(20)
    -> flatten 1408 -> Linear(1408, classes)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.conv1 = nn.Conv2d(in_chans, 10, 5)
        self.incep1 = InceptionA(10)
        self.conv2 = nn.Conv2d(InceptionA.out_channels, 20, 5)
        self.incep2 = InceptionA(20)
        side = ((img_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"inception_mnist needs img_size >= 16, got {img_size}")
        self.num_features = InceptionA.out_channels * side * side
        self.head = ClassifierHead(self.num_features, num_classes, pool=False)
        self.feature_info = [FeatureInfo("incep1", 88, 2), FeatureInfo("incep2", 88, 4)]
        self.data_config = data_config_for(in_chans, img_size, MNIST_MEAN, MNIST_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))   # N x 10 x 12 x 12
        x = self.incep1(x)                           # N x 88 x 12 x 12
        x = F.relu(F.max_pool2d(self.conv2(x), 2))   # N x 20 x 4 x 4
        return self.incep2(x)                        # N x 88 x 4 x 4 (flattened: 1408)


class ResNetMnist(ConvNet):
    """Conv(in,16,5) -> pool -> ReLU -> ResidualBlock(16) -> Conv(16,32,5) -> pool -> ReLU ->
    ResidualBlock(32) -> flatten 512 -> Linear(512, classes)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.conv1 = nn.Conv2d(in_chans, 16, 5)
        self.rblock1 = ResidualBlock(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.rblock2 = ResidualBlock(32)
        side = ((img_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"resnet_mnist needs img_size >= 16, got {img_size}")
        self.num_features = 32 * side * side
        self.head = ClassifierHead(self.num_features, num_classes, pool=False)
        self.feature_info = [FeatureInfo("rblock1", 16, 2), FeatureInfo("rblock2", 32, 4)]
        self.data_config = data_config_for(in_chans, img_size, MNIST_MEAN, MNIST_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))   # N x 16 x 12 x 12
        x = self.rblock1(x)                          # N x 16 x 12 x 12
        x = F.relu(F.max_pool2d(self.conv2(x), 2))   # N x 32 x 4 x 4
        return self.rblock2(x)                       # N x 32 x 4 x 4 (flattened: 512)


@register_model
def inception_mnist(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> InceptionMnist:
    """The lecture's GoogLeNet-style MNIST net: two InceptionA modules, Linear(1408, 10)."""
    return InceptionMnist(num_classes, in_chans, **kwargs)


@register_model
def resnet_mnist(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> ResNetMnist:
    """The lecture's residual MNIST net: two residual blocks, Linear(512, 10)."""
    return ResNetMnist(num_classes, in_chans, **kwargs)
