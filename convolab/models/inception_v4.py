"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual ...").

The paper's Fig. 9 layout: stem (Fig. 3) -> 4 x Inception-A -> Reduction-A -> 7 x Inception-B ->
Reduction-B -> 3 x Inception-C -> average pool -> dropout -> FC. Module names and order follow
timm's `inception_v4` (a port of TF-slim), so its weights load unchanged: 42,679,816 parameters
and 12,253,974,624 MACs at 299x299. Convolutions are conv + BN(eps 1e-3) + ReLU, the pools in
the blocks average without the zero padding (TF's behaviour).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..layers import ClassifierHead, ConvBlock, ReductionA, ReductionASpec, avg_pool_3x3, conv_block, tower
from ..layers.checkpointing import Checkpointed
from ._base import ConvNet, FeatureInfo, data_config_for

INCEPTION_MEAN = (0.5, 0.5, 0.5)  # TF-slim's [-1, 1] input scaling
INCEPTION_STD = (0.5, 0.5, 0.5)


# ---------------------------------------------------------------------------------------------
# The stem's concatenations (Fig. 3), modules A/B/C (Figs. 4-6) and Reduction-B (Fig. 8);
# Reduction-A (Fig. 7), which the Inception-ResNets share, is convolab.layers.ReductionA.
# Submodule names follow timm so that its state dict loads without renaming.
# ---------------------------------------------------------------------------------------------

class Mixed3a(Checkpointed, nn.Module):
    """max pool 3x3/2 | conv 3x3/2 (`ch3x3`), concatenated: 64 x 147 -> 160 x 73 in v4."""

    def __init__(self, in_channels: int, ch3x3: int, conv_block: ConvBlock):
        super().__init__()
        self.out_channels = in_channels + ch3x3
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = conv_block(in_channels, ch3x3, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed5a(Mixed3a):
    """conv 3x3/2 (`ch3x3`) | max pool 3x3/2: Mixed3a concatenated the other way, 192 x 71 -> 384 x 35 in v4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


class TwoTowerSpec(NamedTuple):
    """1x1 -> 3x3 | 1x1 -> 1x7 -> 7x1 -> 3x3: the stem's Mixed_4a (Fig. 3) and Reduction-B (Fig. 8)."""

    ch3x3_reduce: int
    ch3x3: int
    ch7x7x3_reduce: int
    ch1x7: int
    ch7x1: int
    ch7x7x3: int


class Mixed4a(Checkpointed, nn.Module):
    """1x1 -> 3x3 | 1x1 -> 1x7 -> 7x1 -> 3x3, valid 3x3s of stride `stride`: 160 x 73 -> 192 x 71 in v4."""

    def __init__(self, in_channels: int, spec: TwoTowerSpec, conv_block: ConvBlock, stride: int = 1):
        super().__init__()
        s = spec
        self.out_channels = s.ch3x3 + s.ch7x7x3
        self.branch0 = tower(conv_block, in_channels, (s.ch3x3_reduce, 1), (s.ch3x3, 3, stride, 0))
        self.branch1 = tower(conv_block, in_channels, (s.ch7x7x3_reduce, 1), (s.ch1x7, (1, 7)), (s.ch7x1, (7, 1)),
                             (s.ch7x7x3, 3, stride, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class InceptionV4ReductionB(Mixed4a):
    """1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2 (Fig. 8): Mixed4a's towers at stride 2."""

    def __init__(self, in_channels: int, spec: TwoTowerSpec, conv_block: ConvBlock):
        super().__init__(in_channels, spec, conv_block, stride=2)
        self.out_channels += in_channels
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


def _pool_branch(in_channels: int, pool_proj: int, conv_block: ConvBlock) -> nn.Sequential:
    """avg pool 3x3/1 (TF's: without the zero padding) -> 1x1, the pool branch of modules A, B and C."""
    return tower(conv_block, in_channels, avg_pool_3x3(count_include_pad=False), (pool_proj, 1))


class InceptionV4ASpec(NamedTuple):
    """Fig. 4, the 35x35 module."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch3x3dbl_reduce: int
    ch3x3dbl: int
    pool_proj: int


class InceptionV4A(Checkpointed, nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1 (Fig. 4)."""

    def __init__(self, in_channels: int, spec: InceptionV4ASpec, conv_block: ConvBlock):
        super().__init__()
        self.out_channels = spec.ch1x1 + spec.ch3x3 + spec.ch3x3dbl + spec.pool_proj
        self.branch0 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch1 = tower(conv_block, in_channels, (spec.ch3x3_reduce, 1), (spec.ch3x3, 3))
        self.branch2 = tower(conv_block, in_channels, (spec.ch3x3dbl_reduce, 1), (spec.ch3x3dbl, 3),
                             (spec.ch3x3dbl, 3))
        self.branch3 = _pool_branch(in_channels, spec.pool_proj, conv_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionV4BSpec(NamedTuple):
    """Fig. 5, the 17x17 module."""

    ch1x1: int
    ch7x7_reduce: int
    ch1x7: int
    ch7x7: int
    ch7x7dbl_reduce: int
    ch7x7dbl_1: int
    ch7x7dbl_2: int
    ch7x7dbl: int
    pool_proj: int


class InceptionV4B(Checkpointed, nn.Module):
    """1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avgpool -> 1x1 (Fig. 5)."""

    def __init__(self, in_channels: int, spec: InceptionV4BSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch1x1 + s.ch7x7 + s.ch7x7dbl + s.pool_proj
        self.branch0 = conv_block(in_channels, s.ch1x1, kernel_size=1)
        self.branch1 = tower(conv_block, in_channels, (s.ch7x7_reduce, 1), (s.ch1x7, (1, 7)), (s.ch7x7, (7, 1)))
        self.branch2 = tower(conv_block, in_channels, (s.ch7x7dbl_reduce, 1), (s.ch7x7dbl_1, (7, 1)),
                             (s.ch7x7dbl_2, (1, 7)), (s.ch7x7dbl_2, (7, 1)), (s.ch7x7dbl, (1, 7)))
        self.branch3 = _pool_branch(in_channels, s.pool_proj, conv_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionV4CSpec(NamedTuple):
    """Fig. 6, the 8x8 module (expanded filter bank: split 1x3 / 3x1 outputs)."""

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int  # each of the 1x3 and 3x1
    ch3x3dbl_reduce: int
    ch3x1: int
    ch1x3: int
    ch3x3dbl: int  # each of the final 1x3 and 3x1
    pool_proj: int


class InceptionV4C(Checkpointed, nn.Module):
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
        self.branch3 = _pool_branch(in_channels, s.pool_proj, conv_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b1 = torch.cat([self.branch1_1a(b1), self.branch1_1b(b1)], 1)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        b2 = torch.cat([self.branch2_3a(b2), self.branch2_3b(b2)], 1)
        return torch.cat([self.branch0(x), b1, b2, self.branch3(x)], 1)


# ---------------------------------------------------------------------------------------------
# The paper's widths, module by module, and Fig. 9's counts
# ---------------------------------------------------------------------------------------------

# Fig. 3, the stem after its three convolutions (32, 32, 64):
MIXED_3A = 96                                   # conv 3x3/2 beside the max pool
MIXED_4A = TwoTowerSpec(64, 96, 64, 64, 64, 96)  # 1x1, 3x3 | 1x1, 1x7, 7x1, 3x3 (3x3s valid)
MIXED_5A = 192                                  # conv 3x3/2 beside the max pool
# Fig. 4: #1x1, #3x3 reduce, #3x3, #3x3dbl reduce, #3x3dbl, pool proj
INCEPTION_A = InceptionV4ASpec(96, 64, 96, 64, 96, 96)
# Fig. 7 with Table 1's Inception-v4 row: k, l, m, n
REDUCTION_A = ReductionASpec(192, 224, 256, 384)
# Fig. 5: #1x1 | #1x7 reduce, #1x7, #7x1 | #7x7dbl reduce, #7x1, #1x7, #7x1 (same), #1x7 | pool proj
INCEPTION_B = InceptionV4BSpec(384, 192, 224, 256, 192, 192, 224, 256, 128)
# Fig. 8: #3x3 reduce, #3x3/2 | #7x7x3 reduce, #1x7, #7x1, #3x3/2
REDUCTION_B = TwoTowerSpec(192, 192, 256, 256, 320, 320)
# Fig. 6: #1x1 | #3x3 reduce, #1x3 = #3x1 | #3x3dbl reduce, #3x1, #1x3, final #1x3 = #3x1 | pool proj
INCEPTION_C = InceptionV4CSpec(256, 384, 256, 384, 448, 512, 256, 256)
# Fig. 9: how many of each module.
NUM_A, NUM_B, NUM_C = 4, 7, 3


class InceptionV4(ConvNet):
    """Inception-v4; `features` is one Sequential (stem convs, Mixed3a-5a, A x4, Red-A, B x7, Red-B, C x3)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 img_size: int = 299):
        super().__init__()
        block = conv_block(norm="bn", eps=1e-3)
        self.num_classes, self.in_chans = num_classes, in_chans
        stem = [
            block(in_chans, 32, kernel_size=3, stride=2, padding=0),  # N x 32 x 149 x 149
            block(32, 32, kernel_size=3, padding=0),                  # N x 32 x 147 x 147
            block(32, 64, kernel_size=3, padding=1),                  # N x 64 x 147 x 147
            Mixed3a(64, MIXED_3A, block),                             # N x 160 x 73 x 73
            Mixed4a(160, MIXED_4A, block),                            # N x 192 x 71 x 71
            Mixed5a(192, MIXED_5A, block),                            # N x 384 x 35 x 35
        ]
        blocks_a = [InceptionV4A(384, INCEPTION_A, block) for _ in range(NUM_A)]
        reduction_a = ReductionA(384, REDUCTION_A, block)                      # N x 1024 x 17 x 17
        blocks_b = [InceptionV4B(1024, INCEPTION_B, block) for _ in range(NUM_B)]
        reduction_b = InceptionV4ReductionB(1024, REDUCTION_B, block)          # N x 1536 x 8 x 8
        blocks_c = [InceptionV4C(1536, INCEPTION_C, block) for _ in range(NUM_C)]
        self.features = nn.Sequential(*stem, *blocks_a, reduction_a, *blocks_b, reduction_b, *blocks_c)
        self.num_features = blocks_c[-1].out_channels
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        last_a, last_b = 5 + NUM_A, 6 + NUM_A + NUM_B
        self.feature_info = [
            FeatureInfo("features.2", 64, 2), FeatureInfo("features.3", 160, 4),
            FeatureInfo(f"features.{last_a}", 384, 8), FeatureInfo(f"features.{last_b}", 1024, 16),
            FeatureInfo(f"features.{len(self.features) - 1}", 1536, 32)]
        self.data_config = data_config_for(in_chans, img_size, INCEPTION_MEAN, INCEPTION_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 299 x 299 -> N x 1536 x 8 x 8
        return self.features(x)


@register_model(pretrained=("timm",))
def inception_v4(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 img_size: int = 299) -> InceptionV4:
    """Inception-v4 as the paper's Fig. 9 and timm (42,679,816 params, 12.25 GMACs at 299)."""
    return InceptionV4(num_classes, in_chans, drop_rate, img_size)
