"""Inception-v4 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and the Impact of Residual ...").

The paper's Fig. 9 layout: stem (Fig. 3) -> 4 x Inception-A -> Reduction-A -> 7 x Inception-B ->
Reduction-B -> 3 x Inception-C -> average pool -> dropout -> FC. Module names and order follow
timm's `inception_v4` (a port of TF-slim), so its weights load unchanged: 42,679,816 parameters
and 12,253,974,624 MACs at 299x299. Convolutions are conv + BN(eps 1e-3) + ReLU, the pools in
the blocks average without the zero padding (TF's behaviour).
"""
from __future__ import annotations

import torch
from torch import nn

from .._registry import register_model
from ..layers import (
    REDUCTION_A,
    ClassifierHead,
    InceptionV4A,
    InceptionV4ASpec,
    InceptionV4B,
    InceptionV4BSpec,
    InceptionV4C,
    InceptionV4CSpec,
    InceptionV4ReductionB,
    InceptionV4ReductionBSpec,
    Mixed3a,
    Mixed4a,
    Mixed5a,
    ReductionA,
    conv_block,
)
from ._base import ConvNet, FeatureInfo, data_config_for

INCEPTION_MEAN = (0.5, 0.5, 0.5)  # TF-slim's [-1, 1] input scaling
INCEPTION_STD = (0.5, 0.5, 0.5)

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
            Mixed3a(block),                                           # N x 160 x 73 x 73
            Mixed4a(block),                                           # N x 192 x 71 x 71
            Mixed5a(block),                                           # N x 384 x 35 x 35
        ]
        blocks_a = [InceptionV4A(384, InceptionV4ASpec(), block) for _ in range(NUM_A)]
        reduction_a = ReductionA(384, REDUCTION_A["inception_v4"], block)        # N x 1024 x 17 x 17
        blocks_b = [InceptionV4B(1024, InceptionV4BSpec(), block) for _ in range(NUM_B)]
        reduction_b = InceptionV4ReductionB(1024, InceptionV4ReductionBSpec(), block)  # N x 1536 x 8 x 8
        blocks_c = [InceptionV4C(1536, InceptionV4CSpec(), block) for _ in range(NUM_C)]
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
