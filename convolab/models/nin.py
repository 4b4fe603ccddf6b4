"""Network in Network (Lin et al. 2013): mlpconv layers and a global-average-pooled classifier
made of convolutions, with no fully connected layer.

`nin` is d2l's 224x224 version (AlexNet-like kernels, Fashion-MNIST: 1 channel, 10 classes,
1,992,166 parameters); `nin_cifar` is the paper's CIFAR-10 net (192-160-96 / 192-192-192 /
192-192-10, max then average pooling, dropout between the mlpconv layers).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._registry import register_model
from ..layers import MlpConv
from ._base import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    ConvNet,
    FeatureInfo,
    data_config_for,
)


class NiNHead(nn.Module):
    """Dropout -> class-map convolutions (`fc`) -> global average pool: one map per class.

    `pre_logits` gives the globally pooled input features (`num_features` wide); `num_classes=0`
    drops the class maps and gives the same.
    """

    def __init__(self, in_features: int, num_classes: int, class_maps: type[nn.Module],
                 drop_rate: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.class_maps = class_maps  # a class, not a closure, so that the model pickles
        self.drop = nn.Dropout(drop_rate)
        self.fc = class_maps(in_features, num_classes) if num_classes > 0 else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def reset(self, num_classes: int) -> None:
        self.fc = self.class_maps(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or isinstance(self.fc, nn.Identity):
            return self.flatten(self.pool(x))
        return self.flatten(self.pool(self.fc(self.drop(x))))


class ClassMaps3x3(MlpConv):
    """d2l's last mlpconv: 3x3 then two 1x1 convolutions, all `num_classes` wide."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__(in_features, (num_classes,) * 3, 3, padding=1)


class ClassMaps1x1(nn.Sequential):
    """The paper's CIFAR cccp6: 1x1 convolution to one map per class, then ReLU (as in its Caffe net)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, num_classes, 1)
        self.act = nn.ReLU(inplace=True)


class NiN(ConvNet):
    """d2l NiN: three mlpconv + max-pool stages, dropout, and an mlpconv producing class maps."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 224, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.features = nn.Sequential(
            MlpConv(in_chans, (96, 96, 96), 11, stride=4),      # N x 96 x 54 x 54
            nn.MaxPool2d(3, stride=2),                           # N x 96 x 26 x 26
            MlpConv(96, (256, 256, 256), 5, padding=2),          # N x 256 x 26 x 26
            nn.MaxPool2d(3, stride=2),                           # N x 256 x 12 x 12
            MlpConv(256, (384, 384, 384), 3, padding=1),         # N x 384 x 12 x 12
            nn.MaxPool2d(3, stride=2),                           # N x 384 x 5 x 5
        )
        self.num_features = 384
        self.head = NiNHead(384, num_classes, ClassMaps3x3, drop_rate)  # N x 10 x 5 x 5 -> N x 10
        self.feature_info = [FeatureInfo("features.1", 96, 8), FeatureInfo("features.3", 256, 16),
                             FeatureInfo("features.5", 384, 32)]
        mean, std = (MNIST_MEAN, MNIST_STD) if in_chans == 1 else (IMAGENET_MEAN, IMAGENET_STD)
        self.data_config = data_config_for(in_chans, img_size, mean, std)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class NiNCifar(ConvNet):
    """Lin et al.'s CIFAR-10 NiN: mlpconv 192-160-96, max-pool, dropout, 192-192-192, average
    pool, dropout, 192-192 and a 1x1 class map, global average pool (Caffe's ceil-mode pools)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.features = nn.Sequential(
            MlpConv(in_chans, (192, 160, 96), 5, padding=2),     # N x 96 x 32 x 32
            nn.MaxPool2d(3, stride=2, ceil_mode=True),           # N x 96 x 16 x 16
            nn.Dropout(drop_rate),
            MlpConv(96, (192, 192, 192), 5, padding=2),          # N x 192 x 16 x 16
            nn.AvgPool2d(3, stride=2, ceil_mode=True),           # N x 192 x 8 x 8
            nn.Dropout(drop_rate),
            MlpConv(192, (192, 192), 3, padding=1),              # N x 192 x 8 x 8
        )
        self.num_features = 192
        self.head = NiNHead(192, num_classes, ClassMaps1x1)  # N x 10 x 8 x 8 -> N x 10
        self.feature_info = [FeatureInfo("features.0", 96, 1), FeatureInfo("features.3", 192, 2),
                             FeatureInfo("features.6", 192, 4)]
        self.data_config = data_config_for(in_chans, img_size, CIFAR10_MEAN, CIFAR10_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model
def nin(num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> NiN:
    """NiN as d2l builds it for 224x224 Fashion-MNIST: 1,992,166 parameters at 1 channel, 10 classes."""
    return NiN(num_classes, in_chans, **kwargs)


@register_model
def nin_cifar(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> NiNCifar:
    """NiN for 32x32 CIFAR as in the paper's section 4.2."""
    return NiNCifar(num_classes, in_chans, **kwargs)
