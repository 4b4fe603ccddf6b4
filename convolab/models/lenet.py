"""LeNet-5 (LeCun et al. 1998) as the source article builds it, and a modern ReLU/max-pool variant.

Article table for a 1x1x28x28 input: conv 6x28x28 -> sigmoid -> avgpool 6x14x14 -> conv 16x10x10
-> sigmoid -> avgpool 16x5x5 -> flatten 400 -> 120 -> 84 -> 10 (61,706 parameters).
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_model
from ._base import MNIST_MEAN, MNIST_STD, ConvNet, FeatureInfo, data_config_for, init_xavier, move_like


class LeNetHead(nn.Module):
    """flatten -> 120 -> act -> 84 -> act -> classes; `pre_logits` stops at the 84 features."""

    def __init__(self, in_features: int, num_classes: int, act_layer: type[nn.Module]):
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(in_features, 120)
        self.act1 = act_layer()
        self.fc2 = nn.Linear(120, 84)
        self.act2 = act_layer()
        self.fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        """A fresh classifier of `num_classes` (0: none, the 84 features out), where the layers before it live
        (a quantized fc2, whose `weight` is a method, has no parameters: then float32 on the CPU)."""
        fc = nn.Linear(84, num_classes) if num_classes > 0 else nn.Identity()
        self.fc = move_like(fc, next(self.fc2.parameters(), None))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act2(self.fc2(self.act1(self.fc1(self.flatten(x)))))
        return x if pre_logits else self.fc(x)


class LeNet5(ConvNet):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28,
                 act_layer: type[nn.Module] = nn.Sigmoid, pool_layer: type[nn.Module] = nn.AvgPool2d):
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5, padding=2),  # N x 6 x 28 x 28
            act_layer(),
            pool_layer(kernel_size=2, stride=2),                # N x 6 x 14 x 14
            nn.Conv2d(6, 16, kernel_size=5),                    # N x 16 x 10 x 10
            act_layer(),
            pool_layer(kernel_size=2, stride=2),                # N x 16 x 5 x 5
        )
        side = (img_size // 2 - 4) // 2  # conv 5x5 pad 2 keeps the side, pool halves it, conv 5x5 takes 4, pool
        if side < 1:
            raise ValueError(f"LeNet-5 needs img_size >= 12, got {img_size}")
        self.head = LeNetHead(16 * side * side, num_classes, act_layer)
        self.num_features = 84
        self.feature_info = [FeatureInfo("features.2", 6, 2), FeatureInfo("features.5", 16, 4)]
        self.data_config = data_config_for(in_chans, img_size, MNIST_MEAN, MNIST_STD)
        if act_layer is nn.Sigmoid:
            init_xavier(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(aliases=("lenet",), train_defaults={"lr": 0.01})  # sigmoids learn slowly at 2e-3
def lenet5(num_classes: int = 10, in_chans: int = 1, img_size: int = 28) -> LeNet5:
    """LeNet-5 exactly as the article: sigmoid, average pooling, padding 2."""
    return LeNet5(num_classes, in_chans, img_size)


@register_model
def lenet5_modern(num_classes: int = 10, in_chans: int = 1, img_size: int = 28) -> LeNet5:
    """LeNet-5 with ReLU and max pooling."""
    return LeNet5(num_classes, in_chans, img_size, act_layer=nn.ReLU, pool_layer=nn.MaxPool2d)
