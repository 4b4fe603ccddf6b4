"""DenseNet parts (Huang et al. 2017): dense layer (optionally with the B bottleneck), dense block,
transition (with the C compression). Module names follow torchvision's DenseNet.

Dropout: torchvision drops after the 3x3 only; `drop_every_conv=True` (and a Transition's
`drop_rate`) places it as the authors' code does, after every conv but the stem (paper sec. 4.2).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_channels
from ._inplace import not_the_input
from .checkpointing import Checkpointed

NormLayer = Callable[[int], nn.Module]


def _check_drop_rate(block: str, drop_rate: float) -> float:
    """A dropout probability in [0, 1], refused here rather than by the first forward (F.dropout)."""
    if not 0 <= drop_rate <= 1:
        raise ValueError(f"{block}: drop_rate must be in [0, 1], got {drop_rate}")
    return drop_rate


class DenseLayer(Checkpointed, nn.Module):
    """BN-ReLU-conv3x3 giving `growth_rate` new channels; with `bn_size`, a BN-ReLU-conv1x1 to
    `bn_size * growth_rate` channels first (DenseNet-B).

    The optional bottleneck is `norm1/relu1/conv1` and the 3x3 is always `norm2/relu2/conv2`, so a
    bottlenecked layer has torchvision's names. Dropout follows the 3x3 (torchvision); with
    `drop_every_conv` the bottleneck 1x1 too (liuzhuang13/DenseNet, models/DenseConnectLayer.lua).
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int | None = 4,
                 drop_rate: float = 0.0, norm_layer: NormLayer = nn.BatchNorm2d, drop_every_conv: bool = False):
        super().__init__()
        check_channels("DenseLayer", in_channels=in_channels, growth_rate=growth_rate)
        self.drop_rate = _check_drop_rate("DenseLayer", drop_rate)
        if bn_size is not None and bn_size < 1:
            raise ValueError(f"DenseLayer: bn_size must be >= 1 (or None: no bottleneck), got {bn_size}")
        mid = in_channels
        if bn_size is not None:
            mid = bn_size * growth_rate
            self.norm1 = norm_layer(in_channels)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bottleneck = bn_size is not None
        self.norm2 = norm_layer(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False)
        self.drop_every_conv = drop_every_conv

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate > 0 else x

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """N x in_channels x H x W -> N x growth_rate x H x W: the new features only, not concatenated. A list of
        maps (its block's input and earlier layers' outputs) is concatenated here, inside the layer, so that under
        gradient checkpointing the concatenation is recomputed, not kept (torchvision's `memory_efficient`)."""
        x = torch.cat(x, 1) if isinstance(x, list) else x
        if self.bottleneck:  # (an nn.Identity norm gives x itself back: not the caller's tensor to write)
            x = self.conv1(self.relu1(not_the_input(self.norm1(x), x)))
            if self.drop_every_conv:
                x = self._drop(x)
        return self._drop(self.conv2(self.relu2(not_the_input(self.norm2(x), x))))


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers; each sees the concatenation of the block input and all earlier
    layers' outputs, and the block outputs all of them: in + num_layers * growth_rate channels."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int | None = 4,
                 drop_rate: float = 0.0, norm_layer: NormLayer = nn.BatchNorm2d, drop_every_conv: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"DenseBlock: num_layers must be >= 1, got {num_layers}")
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate, norm_layer,
                               drop_every_conv)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x H x W: the input and every layer's output, concatenated."""
        features = [x]
        for layer in self.values():  # (each its own list: a checkpointed layer reads it again in the backward pass)
            features.append(layer([*features]))
        return torch.cat(features, 1)


class Transition(Checkpointed, nn.Sequential):
    """BN-ReLU-conv1x1 to `floor(compression * in)` channels, then 2x2 average pooling (DenseNet-C
    when compression < 1). `drop_rate` > 0 adds dropout after the conv (`drop`), as the authors'
    addTransition does (models/densenet.lua); torchvision's transition has none."""

    def __init__(self, in_channels: int, compression: float = 0.5, norm_layer: NormLayer = nn.BatchNorm2d,
                 drop_rate: float = 0.0):
        super().__init__()
        _check_drop_rate("Transition", drop_rate)
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.out_channels = int(in_channels * compression)
        if self.out_channels < 1:
            raise ValueError(f"Transition: in_channels {in_channels} x compression {compression} gives "
                             f"{self.out_channels} output channels; give in_channels >= {math.ceil(1 / compression)} "
                             "or a larger compression")
        self.norm = norm_layer(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, self.out_channels, 1, bias=False)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)
        self.pool = nn.AvgPool2d(2, stride=2)
