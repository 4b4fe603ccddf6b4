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

import torch
from torch import nn

from .._registry import register_model
from ..layers import (
    REDUCTION_A,
    ClassifierHead,
    InceptionResnetA,
    InceptionResnetASpec,
    InceptionResnetB,
    InceptionResnetBSpec,
    InceptionResnetC,
    InceptionResnetCSpec,
    InceptionV3A,
    InceptionV3ASpec,
    ReductionA,
    ReductionASpec,
    ResnetReductionB,
    ResnetReductionBSpec,
    conv_block,
)
from ._base import ConvNet, FeatureInfo, data_config_for
from .inception_v4 import INCEPTION_MEAN, INCEPTION_STD


@dataclass(frozen=True)
class InceptionResnetConfig:
    """Block specs, counts and residual scales of one Inception-ResNet."""

    stem_out: int
    block_a: InceptionResnetASpec
    block_b: InceptionResnetBSpec
    block_c: InceptionResnetCSpec
    reduction_a: ReductionASpec
    reduction_b: ResnetReductionBSpec
    depths: tuple[int, int, int]  # Block35, Block17, Block8 (plus the final no-ReLU Block8)
    scales: tuple[float, float, float]
    final_conv: int | None  # v2's 1x1 to 1536 before the pool


# Figs. 16-19 (v2) and 10-13 (v1); the counts and scales are TF-slim's (see the module docstring).
IR_V2 = InceptionResnetConfig(
    stem_out=320,
    block_a=InceptionResnetASpec(32, 32, 32, 32, 48, 64),
    block_b=InceptionResnetBSpec(192, 128, 160, 192),
    block_c=InceptionResnetCSpec(192, 192, 224, 256),
    reduction_b=ResnetReductionBSpec(256, 384, 256, 288, 256, 288, 320),
    reduction_a=REDUCTION_A["inception_resnet_v2"],
    depths=(10, 20, 9), scales=(0.17, 0.10, 0.20), final_conv=1536)
IR_V1 = InceptionResnetConfig(
    stem_out=256,
    block_a=InceptionResnetASpec(32, 32, 32, 32, 32, 32),
    block_b=InceptionResnetBSpec(128, 128, 128, 128),
    block_c=InceptionResnetCSpec(192, 192, 192, 192),
    reduction_b=ResnetReductionBSpec(256, 384, 256, 256, 256, 256, 256),
    reduction_a=REDUCTION_A["inception_resnet_v1"],
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
