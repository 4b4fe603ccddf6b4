"""Inception modules: v1 (GoogLeNet), BN-Inception, v3, v4 and Inception-ResNet.

Each module takes a spec whose fields are the columns of the paper's table (output channels of
each branch) and a `conv_block` factory, so one module serves the paper's conv+bias+ReLU and
torchvision's conv+BN(eps 1e-3)+ReLU alike. Submodule names follow torchvision (v1, v3) and
timm (v4, Inception-ResNet) so that their state dicts load without renaming.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .conv_norm_act import ConvBlock


def _avg_pool_3x3(count_include_pad: bool = True, ceil_mode: bool = False) -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


# ---------------------------------------------------------------------------------------------
# Inception v1 (GoogLeNet, Szegedy et al. 2014, Table 1)
# ---------------------------------------------------------------------------------------------

class InceptionSpec(NamedTuple):
    """One row of GoogLeNet's Table 1: the filters of each branch."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch5x5_reduce: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


class InceptionV1(nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool 3x3/1 -> 1x1, concatenated; H and W are kept.

    `kernel_5x5=5` is the paper; torchvision's GoogLeNet uses 3 there (its issue #906).
    """

    def __init__(self, in_channels: int, spec: InceptionSpec, conv_block: ConvBlock,
                 kernel_5x5: int = 5, ceil_mode: bool = False):
        super().__init__()
        self.spec = spec
        self.out_channels = spec.out_channels
        self.branch1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            conv_block(in_channels, spec.ch3x3_reduce, kernel_size=1),
            conv_block(spec.ch3x3_reduce, spec.ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(
            conv_block(in_channels, spec.ch5x5_reduce, kernel_size=1),
            conv_block(spec.ch5x5_reduce, spec.ch5x5, kernel_size=kernel_5x5, padding=kernel_5x5 // 2))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode),
            conv_block(in_channels, spec.pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# ---------------------------------------------------------------------------------------------
# BN-Inception (Ioffe & Szegedy 2015, Appendix Fig. 5)
# ---------------------------------------------------------------------------------------------

class BNInceptionSpec(NamedTuple):
    """One row of the BN paper's Figure 5; `pool_proj=0` passes the pooled input through."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    double3x3_reduce: int
    double3x3: int
    pool: str  # "avg" or "max"
    pool_proj: int
    stride: int = 1

    def out_channels(self, in_channels: int) -> int:
        pooled = self.pool_proj if self.pool_proj else in_channels
        return self.ch1x1 + self.ch3x3 + self.double3x3 + pooled


class BNInception(nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1 proj); stride 2 drops the 1x1 branch.

    The double 3x3 replaces v1's 5x5. Pools round up (Caffe's convention, as the reference port)
    so that 28 -> 14 -> 7 at stride 2.
    """

    def __init__(self, in_channels: int, spec: BNInceptionSpec, conv_block: ConvBlock):
        super().__init__()
        if spec.pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', not {spec.pool!r}")
        if spec.stride == 2 and (spec.ch1x1 or spec.pool_proj):
            raise ValueError("a stride-2 BN-Inception module has no 1x1 branch and passes the pool through")
        self.spec = spec
        self.out_channels = spec.out_channels(in_channels)
        s = spec.stride
        self.branch1x1 = conv_block(in_channels, spec.ch1x1, kernel_size=1) if spec.ch1x1 else None
        self.branch3x3 = nn.Sequential(
            conv_block(in_channels, spec.ch3x3_reduce, kernel_size=1),
            conv_block(spec.ch3x3_reduce, spec.ch3x3, kernel_size=3, stride=s, padding=1))
        self.branch3x3dbl = nn.Sequential(
            conv_block(in_channels, spec.double3x3_reduce, kernel_size=1),
            conv_block(spec.double3x3_reduce, spec.double3x3, kernel_size=3, padding=1),
            conv_block(spec.double3x3, spec.double3x3, kernel_size=3, stride=s, padding=1))
        if s == 2:
            pool: nn.Module = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        elif spec.pool == "avg":
            pool = _avg_pool_3x3(ceil_mode=True)
        else:
            pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        layers = [pool] + ([conv_block(in_channels, spec.pool_proj, kernel_size=1)] if spec.pool_proj else [])
        self.branch_pool = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [] if self.branch1x1 is None else [self.branch1x1(x)]
        outs += [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(outs, 1)


# ---------------------------------------------------------------------------------------------
# Inception-v3 (Szegedy et al. 2015, "Rethinking"): modules A-E as in torchvision / TF-slim
# ---------------------------------------------------------------------------------------------

class InceptionV3ASpec(NamedTuple):
    """35x35 module (Fig. 5, with a 5x5 branch as implemented in TF-slim)."""

    ch1x1: int = 64
    ch5x5_reduce: int = 48
    ch5x5: int = 64
    ch3x3dbl_reduce: int = 64
    ch3x3dbl: int = 96
    pool_proj: int = 32


class InceptionV3A(nn.Module):
    """1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1 at 35x35."""

    def __init__(self, in_channels: int, spec: InceptionV3ASpec, conv_block: ConvBlock,
                 count_include_pad: bool = True):
        super().__init__()
        self.out_channels = spec.ch1x1 + spec.ch5x5 + spec.ch3x3dbl + spec.pool_proj
        self.branch1x1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch5x5_1 = conv_block(in_channels, spec.ch5x5_reduce, kernel_size=1)
        self.branch5x5_2 = conv_block(spec.ch5x5_reduce, spec.ch5x5, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = conv_block(in_channels, spec.ch3x3dbl_reduce, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(spec.ch3x3dbl_reduce, spec.ch3x3dbl, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv_block(spec.ch3x3dbl, spec.ch3x3dbl, kernel_size=3, padding=1)
        self.pool = _avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))], 1)


class InceptionV3BSpec(NamedTuple):
    """35 -> 17 grid reduction (Fig. 10): a stride-2 3x3, a stride-2 double 3x3, max pool."""

    ch3x3: int = 384
    ch3x3dbl_reduce: int = 64
    ch3x3dbl: int = 96


class InceptionV3B(nn.Module):
    """Grid reduction 35 -> 17: stride-2 convolutions beside a max pool, concatenated."""

    def __init__(self, in_channels: int, spec: InceptionV3BSpec, conv_block: ConvBlock):
        super().__init__()
        self.out_channels = spec.ch3x3 + spec.ch3x3dbl + in_channels
        self.branch3x3 = conv_block(in_channels, spec.ch3x3, kernel_size=3, stride=2, padding=0)
        self.branch3x3dbl_1 = conv_block(in_channels, spec.ch3x3dbl_reduce, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(spec.ch3x3dbl_reduce, spec.ch3x3dbl, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = conv_block(spec.ch3x3dbl, spec.ch3x3dbl, kernel_size=3, stride=2, padding=0)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, self.pool(x)], 1)


class InceptionV3CSpec(NamedTuple):
    """17x17 module (Fig. 6): 7x7 factorized into 1x7 and 7x1, `ch7x7_reduce` inside both."""

    ch7x7_reduce: int
    ch1x1: int = 192
    ch7x7: int = 192
    ch7x7dbl: int = 192
    pool_proj: int = 192


class InceptionV3C(nn.Module):
    """1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avgpool -> 1x1 at 17x17."""

    def __init__(self, in_channels: int, spec: InceptionV3CSpec, conv_block: ConvBlock,
                 count_include_pad: bool = True):
        super().__init__()
        c7 = spec.ch7x7_reduce
        self.out_channels = spec.ch1x1 + spec.ch7x7 + spec.ch7x7dbl + spec.pool_proj
        self.branch1x1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch7x7_1 = conv_block(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = conv_block(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = conv_block(c7, spec.ch7x7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv_block(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = conv_block(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv_block(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv_block(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv_block(c7, spec.ch7x7dbl, kernel_size=(1, 7), padding=(0, 3))
        self.pool = _avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(bd))))
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(self.pool(x))], 1)


class InceptionV3DSpec(NamedTuple):
    """17 -> 8 grid reduction: 1x1 -> stride-2 3x3, and 1x1 -> 1x7 -> 7x1 -> stride-2 3x3."""

    ch3x3_reduce: int = 192
    ch3x3: int = 320
    ch7x7x3_reduce: int = 192
    ch7x7x3: int = 192


class InceptionV3D(nn.Module):
    """Grid reduction 17 -> 8 beside a max pool."""

    def __init__(self, in_channels: int, spec: InceptionV3DSpec, conv_block: ConvBlock):
        super().__init__()
        r = spec.ch7x7x3_reduce
        self.out_channels = spec.ch3x3 + spec.ch7x7x3 + in_channels
        self.branch3x3_1 = conv_block(in_channels, spec.ch3x3_reduce, kernel_size=1)
        self.branch3x3_2 = conv_block(spec.ch3x3_reduce, spec.ch3x3, kernel_size=3, stride=2, padding=0)
        self.branch7x7x3_1 = conv_block(in_channels, r, kernel_size=1)
        self.branch7x7x3_2 = conv_block(r, r, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv_block(r, r, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv_block(r, spec.ch7x7x3, kernel_size=3, stride=2, padding=0)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, self.pool(x)], 1)


class InceptionV3ESpec(NamedTuple):
    """8x8 module (Fig. 7): 3x3 split into parallel 1x3 and 3x1 outputs (expanded filter bank)."""

    ch1x1: int = 320
    ch3x3_reduce: int = 384
    ch3x3: int = 384  # each of the 1x3 and 3x1 outputs
    ch3x3dbl_reduce: int = 448
    ch3x3dbl: int = 384  # the 3x3, and each of the 1x3 and 3x1 after it
    pool_proj: int = 192


class InceptionV3E(nn.Module):
    """1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | avgpool -> 1x1 at 8x8."""

    def __init__(self, in_channels: int, spec: InceptionV3ESpec, conv_block: ConvBlock,
                 count_include_pad: bool = True):
        super().__init__()
        self.out_channels = spec.ch1x1 + 2 * spec.ch3x3 + 2 * spec.ch3x3dbl + spec.pool_proj
        r, d = spec.ch3x3_reduce, spec.ch3x3dbl
        self.branch1x1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch3x3_1 = conv_block(in_channels, r, kernel_size=1)
        self.branch3x3_2a = conv_block(r, spec.ch3x3, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = conv_block(r, spec.ch3x3, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv_block(in_channels, spec.ch3x3dbl_reduce, kernel_size=1)
        self.branch3x3dbl_2 = conv_block(spec.ch3x3dbl_reduce, d, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = conv_block(d, d, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv_block(d, d, kernel_size=(3, 1), padding=(1, 0))
        self.pool = _avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(self.pool(x))], 1)


# ---------------------------------------------------------------------------------------------
# Inception-v4 (Szegedy et al. 2016, Figs. 3-9): stem, A/B/C, Reduction-A/B
# ---------------------------------------------------------------------------------------------

class Mixed3a(nn.Module):
    """max pool 3x3/2 | conv 3x3/2 (96): 64 x 147 -> 160 x 73."""

    def __init__(self, conv_block: ConvBlock, in_channels: int = 64, out_conv: int = 96):
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = conv_block(in_channels, out_conv, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(nn.Module):
    """1x1 -> 3x3 | 1x1 -> 7x1 -> 1x7 -> 3x3 (valid): 160 x 73 -> 192 x 71."""

    def __init__(self, conv_block: ConvBlock, in_channels: int = 160):
        super().__init__()
        self.branch0 = nn.Sequential(
            conv_block(in_channels, 64, kernel_size=1),
            conv_block(64, 96, kernel_size=3, padding=0))
        self.branch1 = nn.Sequential(
            conv_block(in_channels, 64, kernel_size=1),
            conv_block(64, 64, kernel_size=(1, 7), padding=(0, 3)),
            conv_block(64, 64, kernel_size=(7, 1), padding=(3, 0)),
            conv_block(64, 96, kernel_size=3, padding=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class Mixed5a(nn.Module):
    """conv 3x3/2 (192) | max pool 3x3/2: 192 x 71 -> 384 x 35."""

    def __init__(self, conv_block: ConvBlock, in_channels: int = 192):
        super().__init__()
        self.conv = conv_block(in_channels, 192, kernel_size=3, stride=2, padding=0)
        self.maxpool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


class InceptionV4ASpec(NamedTuple):
    """Fig. 4, the 35x35 module."""

    ch1x1: int = 96
    ch3x3_reduce: int = 64
    ch3x3: int = 96
    ch3x3dbl_reduce: int = 64
    ch3x3dbl: int = 96
    pool_proj: int = 96


class InceptionV4A(nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1 (Fig. 4)."""

    def __init__(self, in_channels: int, spec: InceptionV4ASpec, conv_block: ConvBlock):
        super().__init__()
        self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.ch3x3dbl + spec.pool_proj
        self.branch0 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, spec.ch3x3_reduce, kernel_size=1),
            conv_block(spec.ch3x3_reduce, spec.ch3x3, kernel_size=3, padding=1))
        self.branch2 = nn.Sequential(
            conv_block(in_channels, spec.ch3x3dbl_reduce, kernel_size=1),
            conv_block(spec.ch3x3dbl_reduce, spec.ch3x3dbl, kernel_size=3, padding=1),
            conv_block(spec.ch3x3dbl, spec.ch3x3dbl, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(
            _avg_pool_3x3(count_include_pad=False),
            conv_block(in_channels, spec.pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionV4BSpec(NamedTuple):
    """Fig. 5, the 17x17 module."""

    ch1x1: int = 384
    ch7x7_reduce: int = 192
    ch1x7: int = 224
    ch7x7: int = 256
    ch7x7dbl_reduce: int = 192
    ch7x7dbl_1: int = 192
    ch7x7dbl_2: int = 224
    ch7x7dbl: int = 256
    pool_proj: int = 128


class InceptionV4B(nn.Module):
    """1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avgpool -> 1x1 (Fig. 5)."""

    def __init__(self, in_channels: int, spec: InceptionV4BSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch1x1 + s.ch7x7 + s.ch7x7dbl + s.pool_proj
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch7x7_reduce, kernel_size=1),
            conv_block(s.ch7x7_reduce, s.ch1x7, kernel_size=(1, 7), padding=(0, 3)),
            conv_block(s.ch1x7, s.ch7x7, kernel_size=(7, 1), padding=(3, 0)))
        self.branch2 = nn.Sequential(
            conv_block(in_channels, s.ch7x7dbl_reduce, kernel_size=1),
            conv_block(s.ch7x7dbl_reduce, s.ch7x7dbl_1, kernel_size=(7, 1), padding=(3, 0)),
            conv_block(s.ch7x7dbl_1, s.ch7x7dbl_2, kernel_size=(1, 7), padding=(0, 3)),
            conv_block(s.ch7x7dbl_2, s.ch7x7dbl_2, kernel_size=(7, 1), padding=(3, 0)),
            conv_block(s.ch7x7dbl_2, s.ch7x7dbl, kernel_size=(1, 7), padding=(0, 3)))
        self.branch3 = nn.Sequential(
            _avg_pool_3x3(count_include_pad=False),
            conv_block(in_channels, s.pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionV4CSpec(NamedTuple):
    """Fig. 6, the 8x8 module (expanded filter bank: split 1x3 / 3x1 outputs)."""

    ch1x1: int = 256
    ch3x3_reduce: int = 384
    ch3x3: int = 256  # each of the 1x3 and 3x1
    ch3x3dbl_reduce: int = 384
    ch3x1: int = 448
    ch1x3: int = 512
    ch3x3dbl: int = 256  # each of the final 1x3 and 3x1
    pool_proj: int = 256


class InceptionV4C(nn.Module):
    """1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3, 3x1) | avgpool -> 1x1 (Fig. 6)."""

    def __init__(self, in_channels: int, spec: InceptionV4CSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch1x1 + 2 * s.ch3x3 + 2 * s.ch3x3dbl + s.pool_proj
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1_0 = conv_block(in_channels, s.ch3x3_reduce, kernel_size=1)
        self.branch1_1a = conv_block(s.ch3x3_reduce, s.ch3x3, kernel_size=(1, 3), padding=(0, 1))
        self.branch1_1b = conv_block(s.ch3x3_reduce, s.ch3x3, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_0 = conv_block(in_channels, s.ch3x3dbl_reduce, kernel_size=1)
        self.branch2_1 = conv_block(s.ch3x3dbl_reduce, s.ch3x1, kernel_size=(3, 1), padding=(1, 0))
        self.branch2_2 = conv_block(s.ch3x1, s.ch1x3, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3a = conv_block(s.ch1x3, s.ch3x3dbl, kernel_size=(1, 3), padding=(0, 1))
        self.branch2_3b = conv_block(s.ch1x3, s.ch3x3dbl, kernel_size=(3, 1), padding=(1, 0))
        self.branch3 = nn.Sequential(
            _avg_pool_3x3(count_include_pad=False),
            conv_block(in_channels, s.pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b1 = torch.cat([self.branch1_1a(b1), self.branch1_1b(b1)], 1)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        b2 = torch.cat([self.branch2_3a(b2), self.branch2_3b(b2)], 1)
        return torch.cat([self.branch0(x), b1, b2, self.branch3(x)], 1)


class ReductionASpec(NamedTuple):
    """Table 1 of the v4 paper: filters k, l, m, n of Reduction-A (Fig. 7)."""

    k: int
    l: int
    m: int
    n: int


REDUCTION_A = {
    "inception_v4": ReductionASpec(192, 224, 256, 384),
    "inception_resnet_v1": ReductionASpec(192, 192, 256, 384),
    "inception_resnet_v2": ReductionASpec(256, 256, 384, 384),
}


class ReductionA(nn.Module):
    """35 -> 17: conv 3x3/2 (n) | 1x1 (k) -> 3x3 (l) -> 3x3/2 (m) | max pool 3x3/2 (Fig. 7)."""

    def __init__(self, in_channels: int, spec: ReductionASpec, conv_block: ConvBlock):
        super().__init__()
        self.out_channels = spec.n + spec.m + in_channels
        self.branch0 = conv_block(in_channels, spec.n, kernel_size=3, stride=2, padding=0)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, spec.k, kernel_size=1),
            conv_block(spec.k, spec.l, kernel_size=3, padding=1),
            conv_block(spec.l, spec.m, kernel_size=3, stride=2, padding=0))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionV4ReductionBSpec(NamedTuple):
    """Fig. 8: the 17 -> 8 reduction of Inception-v4."""

    ch3x3_reduce: int = 192
    ch3x3: int = 192
    ch7x7x3_reduce: int = 256
    ch1x7: int = 256
    ch7x1: int = 320
    ch7x7x3: int = 320


class InceptionV4ReductionB(nn.Module):
    """1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2 (Fig. 8)."""

    def __init__(self, in_channels: int, spec: InceptionV4ReductionBSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch3x3 + s.ch7x7x3 + in_channels
        self.branch0 = nn.Sequential(
            conv_block(in_channels, s.ch3x3_reduce, kernel_size=1),
            conv_block(s.ch3x3_reduce, s.ch3x3, kernel_size=3, stride=2, padding=0))
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch7x7x3_reduce, kernel_size=1),
            conv_block(s.ch7x7x3_reduce, s.ch1x7, kernel_size=(1, 7), padding=(0, 3)),
            conv_block(s.ch1x7, s.ch7x1, kernel_size=(7, 1), padding=(3, 0)),
            conv_block(s.ch7x1, s.ch7x7x3, kernel_size=3, stride=2, padding=0))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


# ---------------------------------------------------------------------------------------------
# Inception-ResNet (Szegedy et al. 2016, Figs. 10-13 for v1, 16-19 for v2)
# ---------------------------------------------------------------------------------------------

class ResidualInception(nn.Module):
    """Branches -> concat -> linear 1x1 back to the input width -> x + scale * that -> ReLU.

    The 1x1 has a bias and no BN or activation (the paper's "1x1 Conv (Linear)"). `scale` is the
    paper's residual scaling (0.1-0.3, Section 3.3) that keeps the residuals from blowing up;
    `no_relu` is the last 8x8 block of the TF-slim models, which feeds a 1x1 conv directly.
    """

    def __init__(self, in_channels: int, branch_channels: int, scale: float, no_relu: bool):
        super().__init__()
        self.scale = scale
        self.out_channels = in_channels
        self.conv2d = nn.Conv2d(branch_channels, in_channels, kernel_size=1)
        self.act = nn.Identity() if no_relu else nn.ReLU()

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(torch.cat(self.branches(x), 1))
        return self.act(out * self.scale + x)


class InceptionResnetASpec(NamedTuple):
    """The 35x35 residual block (Block35): Fig. 10 (v1: 32/32/32) and Fig. 16 (v2: 32/32-32/32-48-64)."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch3x3dbl_reduce: int
    ch3x3dbl_1: int
    ch3x3dbl: int


class InceptionResnetA(ResidualInception):
    """Block35: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3, then the linear 1x1 and the residual add."""

    def __init__(self, in_channels: int, spec: InceptionResnetASpec, conv_block: ConvBlock,
                 scale: float = 1.0, no_relu: bool = False):
        super().__init__(in_channels, spec.ch1x1 + spec.ch3x3 + spec.ch3x3dbl, scale, no_relu)
        s = spec
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch3x3_reduce, kernel_size=1),
            conv_block(s.ch3x3_reduce, s.ch3x3, kernel_size=3, padding=1))
        self.branch2 = nn.Sequential(
            conv_block(in_channels, s.ch3x3dbl_reduce, kernel_size=1),
            conv_block(s.ch3x3dbl_reduce, s.ch3x3dbl_1, kernel_size=3, padding=1),
            conv_block(s.ch3x3dbl_1, s.ch3x3dbl, kernel_size=3, padding=1))

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x), self.branch2(x)]


class InceptionResnetBSpec(NamedTuple):
    """The 17x17 residual block (Block17): Fig. 11 (v1: 128/128-128-128), Fig. 17 (v2: 192/128-160-192)."""

    ch1x1: int
    ch7x7_reduce: int
    ch1x7: int
    ch7x1: int


class InceptionResnetB(ResidualInception):
    """Block17: 1x1 | 1x1 -> 1x7 -> 7x1, then the linear 1x1 and the residual add."""

    def __init__(self, in_channels: int, spec: InceptionResnetBSpec, conv_block: ConvBlock,
                 scale: float = 1.0, no_relu: bool = False):
        super().__init__(in_channels, spec.ch1x1 + spec.ch7x1, scale, no_relu)
        s = spec
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch7x7_reduce, kernel_size=1),
            conv_block(s.ch7x7_reduce, s.ch1x7, kernel_size=(1, 7), padding=(0, 3)),
            conv_block(s.ch1x7, s.ch7x1, kernel_size=(7, 1), padding=(3, 0)))

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x)]


class InceptionResnetCSpec(NamedTuple):
    """The 8x8 residual block (Block8): Fig. 13 (v1: 192/192-192-192), Fig. 19 (v2: 192/192-224-256)."""

    ch1x1: int
    ch3x3_reduce: int
    ch1x3: int
    ch3x1: int


class InceptionResnetC(ResidualInception):
    """Block8: 1x1 | 1x1 -> 1x3 -> 3x1, then the linear 1x1 and the residual add."""

    def __init__(self, in_channels: int, spec: InceptionResnetCSpec, conv_block: ConvBlock,
                 scale: float = 1.0, no_relu: bool = False):
        super().__init__(in_channels, spec.ch1x1 + spec.ch3x1, scale, no_relu)
        s = spec
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch3x3_reduce, kernel_size=1),
            conv_block(s.ch3x3_reduce, s.ch1x3, kernel_size=(1, 3), padding=(0, 1)),
            conv_block(s.ch1x3, s.ch3x1, kernel_size=(3, 1), padding=(1, 0)))

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x)]


class ResnetReductionBSpec(NamedTuple):
    """Reduction-B of the residual networks (Fig. 12 for v1, Fig. 18 for v2)."""

    ch3x3a_reduce: int
    ch3x3a: int
    ch3x3b_reduce: int
    ch3x3b: int
    ch3x3dbl_reduce: int
    ch3x3dbl_1: int
    ch3x3dbl: int


class ResnetReductionB(nn.Module):
    """17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int, spec: ResnetReductionBSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch3x3a + s.ch3x3b + s.ch3x3dbl + in_channels
        self.branch0 = nn.Sequential(
            conv_block(in_channels, s.ch3x3a_reduce, kernel_size=1),
            conv_block(s.ch3x3a_reduce, s.ch3x3a, kernel_size=3, stride=2, padding=0))
        self.branch1 = nn.Sequential(
            conv_block(in_channels, s.ch3x3b_reduce, kernel_size=1),
            conv_block(s.ch3x3b_reduce, s.ch3x3b, kernel_size=3, stride=2, padding=0))
        self.branch2 = nn.Sequential(
            conv_block(in_channels, s.ch3x3dbl_reduce, kernel_size=1),
            conv_block(s.ch3x3dbl_reduce, s.ch3x3dbl_1, kernel_size=3, padding=1),
            conv_block(s.ch3x3dbl_1, s.ch3x3dbl, kernel_size=3, stride=2, padding=0))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)
