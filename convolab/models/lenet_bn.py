"""LeNet-5 with batch normalization, as d2l builds it (article 002's claim, shown on LeNet): a BN
layer after each convolution and each hidden fully connected layer, before the sigmoid.

d2l's layout: convolutions without padding, so 16 x 4 x 4 = 256 features -> 120 -> 84 -> classes
(44,878 parameters with BN, 44,426 without). `batch_norm=False` gives the same net without BN,
the control of `convolab reproduce batchnorm`.
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_model
from ._base import MNIST_MEAN, MNIST_STD, ConvNet, FeatureInfo, data_config_for, init_xavier


def _norm(layer: type[nn.Module], channels: int, batch_norm: bool) -> nn.Module:
    return layer(channels) if batch_norm else nn.Identity()


class LeNetBNHead(nn.Module):
    """flatten -> 120 -> BN -> sigmoid -> 84 -> BN -> sigmoid -> classes; `pre_logits` stops at 84."""

    def __init__(self, in_features: int, num_classes: int, batch_norm: bool = True):
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(in_features, 120)
        self.bn1 = _norm(nn.BatchNorm1d, 120, batch_norm)
        self.act1 = nn.Sigmoid()
        self.fc2 = nn.Linear(120, 84)
        self.bn2 = _norm(nn.BatchNorm1d, 84, batch_norm)
        self.act2 = nn.Sigmoid()
        self.fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        """A fresh final layer on the device and dtype of the layer before it."""
        fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()
        self.fc = fc.to(self.fc2.weight.device, self.fc2.weight.dtype)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act1(self.bn1(self.fc1(self.flatten(x))))
        x = self.act2(self.bn2(self.fc2(x)))
        return x if pre_logits else self.fc(x)


class LeNetBN(ConvNet):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, batch_norm: bool = True):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5),           # N x 6 x 24 x 24
            _norm(nn.BatchNorm2d, 6, batch_norm),
            nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),           # N x 6 x 12 x 12
            nn.Conv2d(6, 16, kernel_size=5),                 # N x 16 x 8 x 8
            _norm(nn.BatchNorm2d, 16, batch_norm),
            nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),           # N x 16 x 4 x 4
        )
        side = ((img_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"lenet5_bn needs img_size >= 16, got {img_size}")
        self.head = LeNetBNHead(16 * side * side, num_classes, batch_norm)
        self.num_features = 84
        self.feature_info = [FeatureInfo("features.3", 6, 2), FeatureInfo("features.7", 16, 4)]
        self.data_config = data_config_for(in_chans, img_size, MNIST_MEAN, MNIST_STD)
        init_xavier(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model
def lenet5_bn(num_classes: int = 10, in_chans: int = 1, img_size: int = 28,
              batch_norm: bool = True) -> LeNetBN:
    """d2l's BN-LeNet: sigmoid LeNet with batch norm after every conv and hidden linear layer."""
    return LeNetBN(num_classes, in_chans, img_size, batch_norm)
