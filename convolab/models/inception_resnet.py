"""Inception-ResNet v1 and v2 (Szegedy et al. 2016): Inception blocks with scaled residual additions.

`inception_resnet_v2` is timm's (a TF-slim port), module for module: stem to 192 x 35 x 35 ->
Mixed_5b (320) -> 10 x Block35 (scale 0.17) -> Mixed_6a = Reduction-A (1088) -> 20 x Block17
(0.10) -> Mixed_7a = Reduction-B (2080) -> 9 x Block8 (0.20) + Block8 without ReLU -> 1x1 conv
1536 -> pool -> FC. 55,843,464 parameters, 13,155,794,016 MACs at 299. The paper's Fig. 15 lists
5/10/5 blocks and the v4 stem; the released weights, and every public count, use the layout above.

`inception_resnet_v1` has the paper's widths 256/896/1792 at 35/17/8 and follows the TF-slim
layout that facenet-pytorch and davidsandberg/facenet ship: stem ending in a 3x3/2 conv to 256,
5 x Block35 (0.17), Reduction-A (k, l, m, n = 192, 192, 256, 384), 10 x Block17 (0.10),
Reduction-B, 5 x Block8 (0.20) + Block8 without ReLU. We take that implementation's 5/10/5+1
blocks rather than the paper's 5/10/5 because it is the only public Inception-ResNet-v1 with
trained weights, so its features and checkpoints can be compared; it has no ImageNet head, so
ours is the usual pool -> dropout -> Linear(1792, num_classes): 24,357,096 parameters at 1000
classes (facenet-pytorch's backbone, 22,564,096, plus 1,793,000).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..layers import (
    ClassifierHead,
    ConvBlock,
    InceptionV3A,
    InceptionV3ASpec,
    ReductionA,
    ReductionASpec,
    conv_block,
    tower,
)
from ..layers.checkpointing import Checkpointed
from ._base import ConvNet, FeatureInfo, data_config_for
from .inception_v4 import INCEPTION_MEAN, INCEPTION_STD

# ---------------------------------------------------------------------------------------------
# The residual blocks (Figs. 10-13 for v1, 16-19 for v2) and Reduction-B; Reduction-A, shared
# with Inception-v4, is convolab.layers.ReductionA. Submodule names follow timm.
# ---------------------------------------------------------------------------------------------


class ResidualInception(Checkpointed, nn.Module):
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
        self.branch1 = tower(conv_block, in_channels, (s.ch3x3_reduce, 1), (s.ch3x3, 3))
        self.branch2 = tower(conv_block, in_channels, (s.ch3x3dbl_reduce, 1), (s.ch3x3dbl_1, 3), (s.ch3x3dbl, 3))

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
        self.branch1 = tower(conv_block, in_channels, (s.ch7x7_reduce, 1), (s.ch1x7, (1, 7)), (s.ch7x1, (7, 1)))

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
        self.branch1 = tower(conv_block, in_channels, (s.ch3x3_reduce, 1), (s.ch1x3, (1, 3)), (s.ch3x1, (3, 1)))

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


class ResnetReductionB(Checkpointed, nn.Module):
    """17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_channels: int, spec: ResnetReductionBSpec, conv_block: ConvBlock):
        super().__init__()
        s = spec
        self.out_channels = s.ch3x3a + s.ch3x3b + s.ch3x3dbl + in_channels
        self.branch0 = tower(conv_block, in_channels, (s.ch3x3a_reduce, 1), (s.ch3x3a, 3, 2, 0))
        self.branch1 = tower(conv_block, in_channels, (s.ch3x3b_reduce, 1), (s.ch3x3b, 3, 2, 0))
        self.branch2 = tower(conv_block, in_channels, (s.ch3x3dbl_reduce, 1), (s.ch3x3dbl_1, 3),
                             (s.ch3x3dbl, 3, 2, 0))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


# ---------------------------------------------------------------------------------------------
# The two networks
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InceptionResnetConfig:
    """Block specs, counts and residual scales of one Inception-ResNet."""

    stem_out: int
    block_a: InceptionResnetASpec
    reduction_a: ReductionASpec
    block_b: InceptionResnetBSpec
    reduction_b: ResnetReductionBSpec
    block_c: InceptionResnetCSpec
    depths: tuple[int, int, int]  # Block35, Block17, Block8 (plus the final no-ReLU Block8)
    scales: tuple[float, float, float]
    final_conv: int | None  # v2's 1x1 to 1536 before the pool


# Figs. 16-19 (v2) and 10-13 (v1), in the network's order; Reduction-A's k, l, m, n are the v4
# paper's Table 1. The counts and scales are TF-slim's (see the module docstring).
IR_V2 = InceptionResnetConfig(
    stem_out=320,
    block_a=InceptionResnetASpec(32, 32, 32, 32, 48, 64),
    reduction_a=ReductionASpec(256, 256, 384, 384),
    block_b=InceptionResnetBSpec(192, 128, 160, 192),
    reduction_b=ResnetReductionBSpec(256, 384, 256, 288, 256, 288, 320),
    block_c=InceptionResnetCSpec(192, 192, 224, 256),
    depths=(10, 20, 9), scales=(0.17, 0.10, 0.20), final_conv=1536)
IR_V1 = InceptionResnetConfig(
    stem_out=256,
    block_a=InceptionResnetASpec(32, 32, 32, 32, 32, 32),
    reduction_a=ReductionASpec(192, 192, 256, 384),
    block_b=InceptionResnetBSpec(128, 128, 128, 128),
    reduction_b=ResnetReductionBSpec(256, 384, 256, 256, 256, 256, 256),
    block_c=InceptionResnetCSpec(192, 192, 192, 192),
    depths=(5, 10, 5), scales=(0.17, 0.10, 0.20), final_conv=None)


class InceptionResnet(ConvNet):
    """Inception-ResNet with timm's module names (conv2d_1a ... repeat, repeat_1, repeat_2, block8)."""

    def __init__(self, cfg: InceptionResnetConfig, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, img_size: int = 299):
        super().__init__()
        block = conv_block(norm="bn", eps=1e-3)
        self.num_classes, self.in_chans = num_classes, in_chans
        self.conv2d_1a = block(in_chans, 32, kernel_size=3, stride=2, padding=0)
        self.conv2d_2a = block(32, 32, kernel_size=3, padding=0)
        self.conv2d_2b = block(32, 64, kernel_size=3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = block(64, 80, kernel_size=1)
        self.conv2d_4a = block(80, 192, kernel_size=3, padding=0)
        self.mixed_stem = cfg.stem_out == 320
        if self.mixed_stem:
            # v2: max pool, then an Inception-A of v3's shape (TF-slim's Mixed_5b) to 320 channels
            self.maxpool_5a = nn.MaxPool2d(3, stride=2)
            self.mixed_5b = InceptionV3A(192, InceptionV3ASpec(96, 48, 64, 64, 96, 64), block,
                                         count_include_pad=False)
        else:
            # v1 (Fig. 14): a stride-2 3x3 conv to 256 channels
            self.conv2d_4b = block(192, cfg.stem_out, kernel_size=3, stride=2, padding=0)
        width_a = cfg.stem_out
        n_a, n_b, n_c = cfg.depths
        s_a, s_b, s_c = cfg.scales
        self.repeat = nn.Sequential(*[InceptionResnetA(width_a, cfg.block_a, block, s_a)
                                      for _ in range(n_a)])
        self.mixed_6a = ReductionA(width_a, cfg.reduction_a, block)
        width_b = self.mixed_6a.out_channels
        self.repeat_1 = nn.Sequential(*[InceptionResnetB(width_b, cfg.block_b, block, s_b)
                                        for _ in range(n_b)])
        self.mixed_7a = ResnetReductionB(width_b, cfg.reduction_b, block)
        width_c = self.mixed_7a.out_channels
        self.repeat_2 = nn.Sequential(*[InceptionResnetC(width_c, cfg.block_c, block, s_c)
                                        for _ in range(n_c)])
        # The last block adds its residual unscaled and without ReLU (TF-slim's `block8(activation_fn=None)`).
        self.block8 = InceptionResnetC(width_c, cfg.block_c, block, scale=1.0, no_relu=True)
        if cfg.final_conv:
            self.conv2d_7b = block(width_c, cfg.final_conv, kernel_size=1)
            self.num_features, last = cfg.final_conv, "conv2d_7b"
        else:
            self.conv2d_7b = None
            self.num_features, last = width_c, "block8"
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.feature_info = [
            FeatureInfo("conv2d_2b", 64, 2), FeatureInfo("conv2d_4a", 192, 4),
            FeatureInfo("repeat", width_a, 8), FeatureInfo("repeat_1", width_b, 16),
            FeatureInfo(last, self.num_features, 32)]
        self.data_config = data_config_for(in_chans, img_size, INCEPTION_MEAN, INCEPTION_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 299 x 299
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        # N x 64 x 147 x 147
        x = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))
        # N x 192 x 71 x 71
        if self.mixed_stem:
            x = self.mixed_5b(self.maxpool_5a(x))
        else:
            x = self.conv2d_4b(x)
        # v2: N x 320 x 35 x 35, v1: N x 256 x 35 x 35
        x = self.mixed_6a(self.repeat(x))
        # v2: N x 1088 x 17 x 17, v1: N x 896 x 17 x 17
        x = self.mixed_7a(self.repeat_1(x))
        # v2: N x 2080 x 8 x 8, v1: N x 1792 x 8 x 8
        x = self.block8(self.repeat_2(x))
        if self.conv2d_7b is not None:
            x = self.conv2d_7b(x)
            # N x 1536 x 8 x 8
        return x


@register_model(pretrained=("timm",))
def inception_resnet_v2(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                        img_size: int = 299) -> InceptionResnet:
    """Inception-ResNet-v2 as timm / TF-slim: 10/20/9+1 blocks (55,843,464 params)."""
    return InceptionResnet(IR_V2, num_classes, in_chans, drop_rate, img_size)


@register_model
def inception_resnet_v1(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                        img_size: int = 299) -> InceptionResnet:
    """Inception-ResNet-v1, widths 256/896/1792, TF-slim's 5/10/5+1 blocks, Linear(1792, classes) head."""
    return InceptionResnet(IR_V1, num_classes, in_chans, drop_rate, img_size)
