"""The Inception pieces that more than one family uses.

* `InceptionV3A`, the 35x35 module of Inception-v3 (its Mixed_5b-5d), which Inception-ResNet-v2
  also uses as the last module of its stem (TF-slim's Mixed_5b);
* `ReductionA`, the 35 -> 17 reduction of Inception-v4 and of both Inception-ResNets, whose
  filters k, l, m, n each network gives (Table 1 of the v4 paper);
* `tower`, one branch of a module: convolutions (and a pool) one after another, written as the
  paper's column of widths and kernels;
* `avg_pool_3x3`, the stride-1 3x3 average pool of the pool branches.

Each module takes a spec whose fields are the columns of the paper's table (output channels of
each branch) and a `conv_block` factory. The blocks used by one family alone live in that family's
model file under `convolab/models/`, and every network writes its widths there.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from ._checks import check_channels
from .checkpointing import Checkpointed
from .conv_norm_act import ConvBlock


def avg_pool_3x3(count_include_pad: bool = True, ceil_mode: bool = False) -> nn.AvgPool2d:
    """3x3 average pool, stride 1, padding 1: keeps H and W (`count_include_pad=False` is TF's)."""
    return nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def tower(conv_block: ConvBlock, in_channels: int, *layers: nn.Module | tuple[Any, ...]) -> nn.Sequential:
    """One branch of an Inception module: `conv_block`s (and pools) one after another.

    A tuple is a convolution `(out_channels, kernel_size[, stride[, padding]])`, fed the previous
    one's channels; without a padding it is "same" (ConvNormAct's default). A module, such as a
    pool, is used as it is and keeps the channels.
    """
    modules: list[nn.Module] = []
    channels = in_channels
    for layer in layers:
        if isinstance(layer, nn.Module):
            modules.append(layer)
            continue
        out_channels, kernel_size, *stride_padding = layer
        check_channels("tower", **{f"layer {len(modules) + 1}'s out_channels": out_channels})
        modules.append(conv_block(channels, out_channels, kernel_size=kernel_size,
                                  **dict(zip(("stride", "padding"), stride_padding))))
        channels = out_channels
    return nn.Sequential(*modules)


def spec_widths(spec: NamedTuple) -> dict[str, int]:
    """A spec's branch widths named as in a message: {"spec.ch1x1": 64, ...}."""
    return {f"spec.{field}": width for field, width in spec._asdict().items()}


class InceptionV3ASpec(NamedTuple):
    """35x35 module (Fig. 5 of "Rethinking", with a 5x5 branch as implemented in TF-slim)."""

    ch1x1: int
    ch5x5_reduce: int
    ch5x5: int
    ch3x3dbl_reduce: int
    ch3x3dbl: int
    pool_proj: int


class InceptionV3A(Checkpointed, nn.Module):
    """1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1 at 35x35 (torchvision's names)."""

    def __init__(self, in_channels: int, spec: InceptionV3ASpec, conv_block: ConvBlock,
                 count_include_pad: bool = True):
        super().__init__()
        check_channels("InceptionV3A", in_channels=in_channels, **spec_widths(spec))
        self.out_channels = spec.ch1x1 + spec.ch5x5 + spec.ch3x3dbl + spec.pool_proj
        self.branch1x1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch5x5_1 = conv_block(in_channels, spec.ch5x5_reduce, kernel_size=1)
        self.branch5x5_2 = conv_block(spec.ch5x5_reduce, spec.ch5x5, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = conv_block(in_channels, spec.ch3x3dbl_reduce, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(spec.ch3x3dbl_reduce, spec.ch3x3dbl, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv_block(spec.ch3x3dbl, spec.ch3x3dbl, kernel_size=3, padding=1)
        self.pool = avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x H x W: the four branches concatenated on the channels."""
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))], 1)


class ReductionASpec(NamedTuple):
    """Filters k, l, m, n of Reduction-A (Fig. 7 of the v4 paper; each network's are its Table 1 row)."""

    k: int
    l: int
    m: int
    n: int


class ReductionA(Checkpointed, nn.Module):
    """35 -> 17: conv 3x3/2 (n) | 1x1 (k) -> 3x3 (l) -> 3x3/2 (m) | max pool 3x3/2 (Fig. 7, timm's names)."""

    def __init__(self, in_channels: int, spec: ReductionASpec, conv_block: ConvBlock):
        super().__init__()
        check_channels("ReductionA", in_channels=in_channels, **spec_widths(spec))
        self.out_channels = spec.n + spec.m + in_channels
        self.branch0 = conv_block(in_channels, spec.n, kernel_size=3, stride=2, padding=0)
        self.branch1 = tower(conv_block, in_channels, (spec.k, 1), (spec.l, 3), (spec.m, 3, 2, 0))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels (n + m + in_channels) x (H-3)//2+1 x (W-3)//2+1."""
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)
