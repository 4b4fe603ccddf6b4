"""GoogLeNet (Inception v1, Szegedy et al. 2014): the paper's network, torchvision's, and d2l's small one.

Three registered variants share one class and one table of modules (paper Table 1):

* `googlenet`: the paper. True 5x5 branches, convolutions with bias and ReLU and no BN, LRN after
  conv1 and conv3 (Fig. 3), max pools 3x3/2 rounding up (Caffe's convention, giving 56/28/14/7),
  dropout 0.4; aux heads with the paper's 5x5/3 average pool. 6,998,552 parameters,
  1,582,671,872 MACs at 224.
* `googlenet_tv`: torchvision 0.29.1's `googlenet`, weight for weight. 3x3 in the "5x5" branch
  (torchvision issue #906), conv + BN(eps 1e-3) + ReLU, ceil-mode pools, maxpool4 2x2/2, dropout
  0.2, adaptive-pool aux heads. 6,624,904 parameters (13,004,888 with aux heads).
* `googlenet_small`: d2l's GoogLeNet layout (1 channel, 10 classes): the paper's modules, no LRN,
  pools 3x3/2 with padding 1 so that 28x28 input still ends at 1x1, plus BN after every conv
  (without it the MNIST loss stayed at 2.30 through our first 20-100 Adam steps); `batch_norm=False`
  is d2l's net exactly (5,977,530 parameters).

Auxiliary heads: `aux_logits=False` by default (torchvision defaults to True when built without
weights; we follow its released weights and timm, and `model(x)` then trains every parameter).
With `aux_logits=True`, `model(x)` still returns the main logits in every mode and
`model.forward_outputs(x)` returns `{"main", "aux1", "aux2"}`.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..errors import ConfigError
from ..layers import ClassifierHead, ConvBlock, conv_block, tower
from ..layers.checkpointing import Checkpointed
from ._aux import AuxClassifierNet
from ._base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    FeatureInfo,
    data_config_for,
    init_truncated_normal,
    init_xavier,
    torchvision_input,
)

# One call in a torch.fx graph (features_only, --until, draw): its channel check cannot be traced through.
torch.fx.wrap("torchvision_input")


class GoogLeNetAux(nn.Module):
    """pool to 4x4 -> 1x1 conv 128 -> FC 1024 -> ReLU -> dropout -> FC classes (GoogLeNet Sec. 5).

    `pool="avg"` is the paper's 5x5/3 average pool (14 -> 4); `pool="adaptive"` is torchvision's
    adaptive average pool to 4x4, which bins 14 pixels differently (same shapes, other numbers).
    The paper's pool gives 4x4 only from a 14-16 pixel grid, i.e. GoogLeNet at about 224x224.
    """

    def __init__(self, in_channels: int, num_classes: int, conv_block: ConvBlock, pool: str = "avg",
                 drop_rate: float = 0.7):
        super().__init__()
        if pool not in ("avg", "adaptive"):
            raise ValueError(f"pool must be 'avg' or 'adaptive', not {pool!r}")
        self.pool = nn.AvgPool2d(5, stride=3) if pool == "avg" else nn.AdaptiveAvgPool2d(4)
        self.conv = conv_block(in_channels, 128, kernel_size=1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # aux1: N x 512 x 14 x 14, aux2: N x 528 x 14 x 14
        x = self.conv(self.pool(x))
        # N x 128 x 4 x 4
        x = self.drop(self.act(self.fc1(self.flatten(x))))
        # N x 1024
        return self.fc2(x)


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


class InceptionV1(Checkpointed, nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool 3x3/1 -> 1x1, concatenated; H and W are kept.

    `kernel_5x5=5` is the paper; torchvision's GoogLeNet uses 3 there (its issue #906). Submodule
    names follow torchvision so that its state dict loads without renaming.
    """

    def __init__(self, in_channels: int, spec: InceptionSpec, conv_block: ConvBlock,
                 kernel_5x5: int = 5, ceil_mode: bool = False):
        super().__init__()
        self.spec = spec
        self.out_channels = spec.out_channels
        self.branch1 = conv_block(in_channels, spec.ch1x1, kernel_size=1)
        self.branch2 = tower(conv_block, in_channels, (spec.ch3x3_reduce, 1), (spec.ch3x3, 3))
        self.branch3 = tower(conv_block, in_channels, (spec.ch5x5_reduce, 1), (spec.ch5x5, kernel_5x5))
        self.branch4 = tower(conv_block, in_channels, nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode),
                             (spec.pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_TABLE: dict[str, InceptionSpec] = {
    "inception3a": InceptionSpec(64, 96, 128, 16, 32, 32),
    "inception3b": InceptionSpec(128, 128, 192, 32, 96, 64),
    "inception4a": InceptionSpec(192, 96, 208, 16, 48, 64),
    "inception4b": InceptionSpec(160, 112, 224, 24, 64, 64),
    "inception4c": InceptionSpec(128, 128, 256, 24, 64, 64),
    "inception4d": InceptionSpec(112, 144, 288, 32, 64, 64),
    "inception4e": InceptionSpec(256, 160, 320, 32, 128, 128),
    "inception5a": InceptionSpec(256, 160, 320, 32, 128, 128),
    "inception5b": InceptionSpec(384, 192, 384, 48, 128, 128),
}


def _lrn() -> nn.Module:
    # Caffe's bvlc_googlenet LRN: 5 channels, alpha 1e-4, beta 0.75.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


class GoogLeNet(AuxClassifierNet):
    """GoogLeNet; the keyword arguments select between the paper, torchvision and d2l variants."""

    possible_aux = ("aux1", "aux2")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False, *,
                 block: ConvBlock, kernel_5x5: int = 5, pool_ceil_mode: bool = True,
                 pool_padding: int = 0, maxpool4_kernel: int = 3, lrn: bool = False,
                 aux_pool: str = "avg", drop_rate: float = 0.4, aux_drop_rate: float = 0.7,
                 transform_input: bool = False, img_size: int = 224,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        if transform_input and in_chans != 3:
            raise ConfigError(f"transform_input re-normalizes 3 RGB channels; in_chans is {in_chans}")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.transform_input = transform_input

        def pool(kernel: int = 3) -> nn.MaxPool2d:
            return nn.MaxPool2d(kernel, stride=2, padding=pool_padding if kernel == 3 else 0,
                                ceil_mode=pool_ceil_mode)

        def module(in_channels: int, name: str) -> InceptionV1:
            return InceptionV1(in_channels, GOOGLENET_TABLE[name], block, kernel_5x5, pool_ceil_mode)

        self.conv1 = block(in_chans, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = pool()
        self.lrn1 = _lrn() if lrn else nn.Identity()
        self.conv2 = block(64, 64, kernel_size=1)
        self.conv3 = block(64, 192, kernel_size=3, padding=1)
        self.lrn2 = _lrn() if lrn else nn.Identity()
        self.maxpool2 = pool()
        self.inception3a = module(192, "inception3a")
        self.inception3b = module(256, "inception3b")
        self.maxpool3 = pool()
        self.inception4a = module(480, "inception4a")
        self.inception4b = module(512, "inception4b")
        self.inception4c = module(512, "inception4c")
        self.inception4d = module(512, "inception4d")
        self.inception4e = module(528, "inception4e")
        self.maxpool4 = pool(maxpool4_kernel)
        self.inception5a = module(832, "inception5a")
        self.inception5b = module(832, "inception5b")
        self.num_features = self.inception5b.out_channels
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        aux = partial(GoogLeNetAux, num_classes=num_classes, conv_block=block, pool=aux_pool,
                      drop_rate=aux_drop_rate)
        self.aux1 = aux(self.inception4a.out_channels) if aux_logits else None
        self.aux2 = aux(self.inception4d.out_channels) if aux_logits else None
        self._set_aux_names()
        self.feature_info = [
            FeatureInfo("conv1", 64, 2), FeatureInfo("conv3", 192, 4), FeatureInfo("inception3b", 480, 8),
            FeatureInfo("inception4e", 832, 16), FeatureInfo("inception5b", 1024, 32)]
        self.data_config = data_config_for(in_chans, img_size, mean, std)
        if not any(isinstance(m, nn.BatchNorm2d) for m in self.modules()):
            # Without BN the initial scale matters; the paper's Caffe model (bvlc_googlenet) and
            # d2l both start from Xavier weights, so we do too.
            init_xavier(self)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.transform_input:
            x = torchvision_input(x)  # (the usual data pipeline feeds the ported weights)
        # N x 3 x 224 x 224
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        # N x 64 x 56 x 56
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        # N x 192 x 28 x 28
        x = self.inception3b(self.inception3a(x))
        # N x 480 x 28 x 28
        x = self.inception4a(self.maxpool3(x))
        # N x 512 x 14 x 14
        aux1_in = x
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        # N x 528 x 14 x 14
        aux2_in = x
        x = self.inception4e(x)
        # N x 832 x 14 x 14
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        # N x 1024 x 7 x 7
        return x, {"aux1": aux1_in, "aux2": aux2_in}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_aux(x)[0]


@register_model(train_defaults={"aux_weight": 0.3})  # the aux heads' loss weight: the paper's section 5
def googlenet(num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
              drop_rate: float = 0.4, img_size: int = 224) -> GoogLeNet:
    """GoogLeNet as the paper: true 5x5, conv biases, ReLU, LRN, no BN (6,998,552 params)."""
    return GoogLeNet(num_classes, in_chans, aux_logits, block=conv_block(norm=None), lrn=True,
                     drop_rate=drop_rate, img_size=img_size)


@register_model(pretrained=("torchvision",), train_defaults={"aux_weight": 0.3})  # GoogLeNet paper, section 5
def googlenet_tv(num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
                 transform_input: bool = False, drop_rate: float = 0.2, aux_drop_rate: float = 0.7,
                 img_size: int = 224) -> GoogLeNet:
    """torchvision's GoogLeNet: 3x3 "5x5" branch, BN eps 1e-3 (6,624,904 params; 13,004,888 with aux)."""
    model = GoogLeNet(num_classes, in_chans, aux_logits, block=conv_block(norm="bn", eps=1e-3),
                      kernel_5x5=3, maxpool4_kernel=2, aux_pool="adaptive", drop_rate=drop_rate,
                      aux_drop_rate=aux_drop_rate, transform_input=transform_input, img_size=img_size)
    init_truncated_normal(model, 0.01)  # (torchvision's: trained from scratch, it starts where torchvision's does)
    return model


@register_model
def googlenet_small(num_classes: int = 10, in_chans: int = 1, img_size: int = 28,
                    batch_norm: bool = True, drop_rate: float = 0.0) -> GoogLeNet:
    """d2l's GoogLeNet layout for 28 to 96 pixel input, BN after each conv (`batch_norm=False`: d2l's); no dropout
    before the classifier unless `drop_rate` (d2l has none)."""
    # No aux heads: at 28x28 inception4a is 2x2, too small for the 5x5/3 pool of the paper's head.
    # BN by default because the plain 22-layer net barely moves in its first hundreds of steps.
    block = conv_block(norm="bn") if batch_norm else conv_block(norm=None)
    return GoogLeNet(num_classes, in_chans, False, block=block, pool_ceil_mode=False, pool_padding=1,
                     drop_rate=drop_rate, img_size=img_size, mean=MNIST_MEAN, std=MNIST_STD)
