"""Inception-v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture"), and a small Inception.

`inception_v3` is torchvision's (= TF-slim's) network, weight for weight: 23,834,568 parameters,
27,161,264 with the auxiliary head, 5,713,216,096 MACs at 299x299; it runs from 75x75 up (the aux
head, as torchvision's, needs the 17x17 grid of 299x299 input). `aux_logits=False` is the default
(timm's; torchvision's is True without weights); `forward_outputs(x)` gives `{"main", "aux"}`. The
real stem differs from the paper's Table 1 (1x1 -> 80 at 73x73, 3x3 -> 192 at 71x71, and
Mixed_5b outputs 256, not 288); the implementation is what the published weights need.

`inception_small` is the small Inception of Zhang et al. 2017 ("Understanding deep learning
requires rethinking generalization", Fig. 3) for 28x28 and 32x32 input: conv 3x3 96, then
modules of a 1x1 and a 3x3 branch, and downsample modules of a stride-2 3x3 beside a max pool.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..errors import ConfigError
from ..layers import ClassifierHead, InceptionV3A, InceptionV3ASpec, avg_pool_3x3, conv_block
from ..layers.checkpointing import Checkpointed
from ..layers.conv_norm_act import ConvBlock
from ._aux import AuxClassifierNet
from ._base import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ConvNet,
    FeatureInfo,
    data_config_for,
    init_truncated_normal,
    torchvision_input,
)

# One call in a torch.fx graph (features_only, --until, draw): its channel check cannot be traced through.
torch.fx.wrap("torchvision_input")

# ---------------------------------------------------------------------------------------------
# Modules B-E (module A, which Inception-ResNet-v2 shares, is convolab.layers.InceptionV3A)
# ---------------------------------------------------------------------------------------------

class InceptionV3Aux(nn.Module):
    """avg pool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> global pool -> FC classes (v3 Fig. 8).

    Needs a grid of at least 17x17 (Mixed_6e at 299x299 input), as torchvision's.
    """

    def __init__(self, in_channels: int, num_classes: int, conv_block: ConvBlock):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = conv_block(in_channels, 128, kernel_size=1)
        self.conv1 = conv_block(128, 768, kernel_size=5, padding=0)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 768 x 17 x 17
        x = self.conv0(self.pool(x))
        # N x 128 x 5 x 5
        x = self.conv1(x)
        # N x 768 x 1 x 1
        return self.fc(self.flatten(self.global_pool(x)))


class InceptionV3BSpec(NamedTuple):
    """35 -> 17 grid reduction (Fig. 10): a stride-2 3x3, a stride-2 double 3x3, max pool."""

    ch3x3: int
    ch3x3dbl_reduce: int
    ch3x3dbl: int


class InceptionV3B(Checkpointed, nn.Module):
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
    ch1x1: int
    ch7x7: int
    ch7x7dbl: int
    pool_proj: int


class InceptionV3C(Checkpointed, nn.Module):
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
        self.pool = avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(bd))))
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(self.pool(x))], 1)


class InceptionV3DSpec(NamedTuple):
    """17 -> 8 grid reduction: 1x1 -> stride-2 3x3, and 1x1 -> 1x7 -> 7x1 -> stride-2 3x3."""

    ch3x3_reduce: int
    ch3x3: int
    ch7x7x3_reduce: int
    ch7x7x3: int


class InceptionV3D(Checkpointed, nn.Module):
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

    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int  # each of the 1x3 and 3x1 outputs
    ch3x3dbl_reduce: int
    ch3x3dbl: int  # the 3x3, and each of the 1x3 and 3x1 after it
    pool_proj: int


class InceptionV3E(Checkpointed, nn.Module):
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
        self.pool = avg_pool_3x3(count_include_pad)
        self.branch_pool = conv_block(in_channels, spec.pool_proj, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(self.pool(x))], 1)


# The modules of Inception-v3, in order, with their widths (torchvision's and TF-slim's).
# A, Fig. 5:  #1x1, #5x5 reduce, #5x5, #3x3dbl reduce, #3x3dbl, pool proj
# B, Fig. 10: #3x3/2, #3x3dbl reduce, #3x3dbl/2 (beside a max pool)
# C, Fig. 6:  #7x7 reduce, #1x1, #7x7, #7x7dbl, pool proj
# D:          #3x3 reduce, #3x3/2, #7x7x3 reduce, #7x7x3/2 (beside a max pool)
# E, Fig. 7:  #1x1, #3x3 reduce, #3x3 (each of 1x3, 3x1), #3x3dbl reduce, #3x3dbl (each), pool proj
INCEPTION_V3_TABLE: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "Mixed_5b": (InceptionV3A, InceptionV3ASpec(64, 48, 64, 64, 96, 32)),
    "Mixed_5c": (InceptionV3A, InceptionV3ASpec(64, 48, 64, 64, 96, 64)),
    "Mixed_5d": (InceptionV3A, InceptionV3ASpec(64, 48, 64, 64, 96, 64)),
    "Mixed_6a": (InceptionV3B, InceptionV3BSpec(384, 64, 96)),
    "Mixed_6b": (InceptionV3C, InceptionV3CSpec(128, 192, 192, 192, 192)),
    "Mixed_6c": (InceptionV3C, InceptionV3CSpec(160, 192, 192, 192, 192)),
    "Mixed_6d": (InceptionV3C, InceptionV3CSpec(160, 192, 192, 192, 192)),
    "Mixed_6e": (InceptionV3C, InceptionV3CSpec(192, 192, 192, 192, 192)),
    "Mixed_7a": (InceptionV3D, InceptionV3DSpec(192, 320, 192, 192)),
    "Mixed_7b": (InceptionV3E, InceptionV3ESpec(320, 384, 384, 448, 384, 192)),
    "Mixed_7c": (InceptionV3E, InceptionV3ESpec(320, 384, 384, 448, 384, 192)),
}


class InceptionV3(AuxClassifierNet):
    """Inception-v3 with torchvision's module names; `aux_logits=True` adds the head on Mixed_6e."""

    possible_aux = ("aux",)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 transform_input: bool = False, drop_rate: float = 0.5, img_size: int = 299,
                 block: ConvBlock | None = None):
        super().__init__()
        if transform_input and in_chans != 3:
            raise ConfigError(f"transform_input re-normalizes 3 RGB channels; in_chans is {in_chans}")
        block = block or conv_block(norm="bn", eps=1e-3)
        self.num_classes, self.in_chans = num_classes, in_chans
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = block(in_chans, 32, kernel_size=3, stride=2, padding=0)
        self.Conv2d_2a_3x3 = block(32, 32, kernel_size=3, padding=0)
        self.Conv2d_2b_3x3 = block(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = block(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = block(80, 192, kernel_size=3, padding=0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        channels = 192
        for name, (module, spec) in INCEPTION_V3_TABLE.items():
            setattr(self, name, module(channels, spec, block))
            channels = getattr(self, name).out_channels
        self.num_features = self.Mixed_7c.out_channels
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.aux = InceptionV3Aux(768, num_classes, block) if aux_logits else None
        self._set_aux_names()
        self.feature_info = [
            FeatureInfo("Conv2d_2b_3x3", 64, 2), FeatureInfo("Conv2d_4a_3x3", 192, 4),
            FeatureInfo("Mixed_5d", 288, 8), FeatureInfo("Mixed_6e", 768, 16),
            FeatureInfo("Mixed_7c", 2048, 32)]
        self.data_config = data_config_for(in_chans, img_size)
        # torchvision's initialization (and timm's), so that a run from scratch starts where theirs does; their aux
        # head's 0.01 is set on the conv block, which their loop never reads (it reads nn.Conv2d's), so 0.1 there too
        init_truncated_normal(self, 0.1, {self.aux.fc: 0.001} if self.aux else None)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.transform_input:
            x = torchvision_input(x)  # torchvision's ported TF weights expect (x - 0.5) / 0.5
        # N x 3 x 299 x 299
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        # N x 64 x 147 x 147
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))
        # N x 192 x 71 x 71
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(self.maxpool2(x))))
        # N x 288 x 35 x 35
        x = self.Mixed_6a(x)
        # N x 768 x 17 x 17
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        # N x 768 x 17 x 17
        aux_in = x
        x = self.Mixed_7a(x)
        # N x 1280 x 8 x 8
        x = self.Mixed_7c(self.Mixed_7b(x))
        # N x 2048 x 8 x 8
        return x, {"aux": aux_in}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_aux(x)[0]


@register_model(pretrained=("torchvision", "timm"), train_defaults={"aux_weight": 0.4})  # the paper's section 4
def inception_v3(num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 transform_input: bool = False, drop_rate: float = 0.5, img_size: int = 299) -> InceptionV3:
    """Inception-v3 as torchvision and TF-slim (23,834,568 params; 27,161,264 with aux)."""
    return InceptionV3(num_classes, in_chans, aux_logits, transform_input, drop_rate, img_size)


# ---------------------------------------------------------------------------------------------
# Small Inception (Zhang et al. 2017, Fig. 3) for 28x28 / 32x32 input
# ---------------------------------------------------------------------------------------------

class SmallInceptionSpec(NamedTuple):
    """A module of the small Inception: the filters of its 1x1 and its 3x3 branch."""

    ch1x1: int
    ch3x3: int


class SmallInceptionModule(Checkpointed, nn.Module):
    """1x1 | 3x3 (same padding), concatenated."""

    def __init__(self, in_channels: int, spec: SmallInceptionSpec, block: ConvBlock):
        super().__init__()
        self.out_channels = spec.ch1x1 + spec.ch3x3
        self.branch1x1 = block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch3x3 = block(in_channels, spec.ch3x3, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x)], 1)


class SmallDownsample(Checkpointed, nn.Module):
    """conv 3x3/2 | max pool 3x3/2, both padded by 1 ("same"), concatenated: halves H and W."""

    def __init__(self, in_channels: int, ch3x3: int, block: ConvBlock):
        super().__init__()
        self.out_channels = ch3x3 + in_channels
        # "same" padding as in TF: 28 -> 14 -> 7, the paper's 28x28 crops ending on a 7x7 grid
        self.branch3x3 = block(in_channels, ch3x3, kernel_size=3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.pool(x)], 1)


# Fig. 3 of Zhang et al.: Inception(ch1x1, ch3x3) modules and Downsample(ch3x3) between them.
SMALL_INCEPTION_STAGES: tuple[tuple[SmallInceptionSpec, ...], ...] = (
    (SmallInceptionSpec(32, 32), SmallInceptionSpec(32, 48)),
    (SmallInceptionSpec(112, 48), SmallInceptionSpec(96, 64), SmallInceptionSpec(80, 80),
     SmallInceptionSpec(48, 96)),
    (SmallInceptionSpec(176, 160), SmallInceptionSpec(176, 160)),
)
SMALL_DOWNSAMPLE = (80, 96)


class SmallInception(ConvNet):
    """conv 3x3 96 -> stage1 -> downsample -> stage2 -> downsample -> stage3 -> global pool -> fc."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 block: ConvBlock | None = None, drop_rate: float = 0.0):
        super().__init__()
        block = block or conv_block(norm="bn")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.stem = block(in_chans, 96, kernel_size=3, padding=1)
        channels, stages = 96, []
        for i, specs in enumerate(SMALL_INCEPTION_STAGES):
            modules: list[nn.Module] = []
            if i > 0:
                modules.append(SmallDownsample(channels, SMALL_DOWNSAMPLE[i - 1], block))
                channels = modules[-1].out_channels
            for spec in specs:
                modules.append(SmallInceptionModule(channels, spec, block))
                channels = modules[-1].out_channels
            stages.append(nn.Sequential(*modules))
        self.stage1, self.stage2, self.stage3 = stages
        self.num_features = channels
        self.head = ClassifierHead(channels, num_classes, drop_rate)
        self.feature_info = [FeatureInfo("stem", 96, 1), FeatureInfo("stage1", 80, 1),
                             FeatureInfo("stage2", 144, 2), FeatureInfo("stage3", 336, 4)]
        self.data_config = data_config_for(in_chans, img_size, CIFAR10_MEAN, CIFAR10_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 32 x 32
        x = self.stage1(self.stem(x))
        # N x 80 x 32 x 32
        x = self.stage2(x)
        # N x 144 x 16 x 16; stage3 gives N x 336 x 8 x 8
        return self.stage3(x)


@register_model
def inception_small(num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                    drop_rate: float = 0.0) -> SmallInception:
    """The small Inception of Zhang et al. 2017 for CIFAR-10 / MNIST-size input (conv + BN + ReLU); no dropout
    before the classifier unless `drop_rate` (theirs has none)."""
    return SmallInception(num_classes, in_chans, img_size, drop_rate=drop_rate)
