"""BN-Inception, the "Inception-v2" of the batch-normalization paper (Ioffe & Szegedy 2015, Appendix).

GoogLeNet with BN after every convolution, each 5x5 replaced by two 3x3 (the "double 3x3"), a
third 28x28 module (3c), and stride-2 modules (3c, 4e) that reduce the grid themselves and pass
the max-pooled input through instead of pooling between stages. The module table is Fig. 5.

First convolution: the paper makes it separable (7x7 depthwise with depth multiplier 8, then
1x1). By default we use a plain 7x7/2 as the widely used Caffe model (ported by Cadene
`pretrainedmodels.bninception`) does, so that counts and weights compare with it;
`separable_stem=True` gives the paper's depthwise 7x7 (3 -> 24) and pointwise 1x1 (24 -> 64).

Parameters: 11,285,224 with the plain stem, which is Cadene's 11,295,240 less the 10,016 biases
its convolutions carry in front of BN (one per BN channel; BN's shift makes them redundant,
so ours have none); 11,278,528 with the separable stem. MACs at 224: 2,032,600,064, equal to
Cadene's (biases cost no MACs). Output widths follow the sums of Fig. 5's columns, which the
Caffe model also has: 4c and 4d give 608 channels and 4e 1056 (the figure prints 576 and 1024).

Sizes: the stride-2 modules (3c, 4e) pad their max pool on the far side so that it rounds as their
stride-2 convolutions do (`reduction_pool`); any input from 7 px up runs, where Caffe's pool (and
Cadene's port) ran only at 32k-1 ... 32k+6 px. At those sizes, 224 included, the outputs are unchanged.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..layers import ClassifierHead, ConvBlock, avg_pool_3x3, conv_block, tower
from ..layers.checkpointing import Checkpointed
from ._base import ConvNet, FeatureInfo, data_config_for


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


def reduction_pool() -> tuple[nn.Module, nn.Module]:
    """The max pool of a stride-2 module: one -inf row and column on the far side, then 3x3/2 rounding up.

    The module's stride-2 3x3 convolutions (padding 1) give ceil(n/2) rows; Caffe's 3x3/2 pool with
    ceil_mode (Cadene's port, and ours before) gives ceil((n-1)/2), one fewer at odd n, so the concat
    failed unless the input was 32k-1 ... 32k+6 px. Padded so, the pool gives ceil(n/2) at every n, as
    TF-slim's 'SAME' pool does; at even n (every size that ran before, 224 included) its windows and
    outputs are Caffe's exactly (the pad falls where ceil_mode's last, partial window already reached).
    """
    return nn.ConstantPad2d((0, 1, 0, 1), float("-inf")), nn.MaxPool2d(3, stride=2, ceil_mode=True)


class BNInception(Checkpointed, nn.Module):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1 proj); stride 2 drops the 1x1 branch.

    The double 3x3 replaces v1's 5x5. Pools round up (Caffe's convention, as the reference port)
    so that 28 -> 14 -> 7 at stride 2; at stride 2 the pool is padded to round as the convolutions do
    (15 -> 8), so every input size from 7 px up runs (`reduction_pool`).
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
        self.branch3x3 = tower(conv_block, in_channels, (spec.ch3x3_reduce, 1), (spec.ch3x3, 3, s, 1))
        self.branch3x3dbl = tower(conv_block, in_channels, (spec.double3x3_reduce, 1), (spec.double3x3, 3),
                                  (spec.double3x3, 3, s, 1))
        pools: tuple[nn.Module, ...]
        if s == 2:  # ceil(n/2) at every n, as the stride-2 convolutions give (see reduction_pool)
            pools = reduction_pool()
        elif spec.pool == "avg":
            pools = (avg_pool_3x3(ceil_mode=True),)
        else:
            pools = (nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),)
        self.branch_pool = tower(conv_block, in_channels, *pools, *([(spec.pool_proj, 1)] if spec.pool_proj else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [] if self.branch1x1 is None else [self.branch1x1(x)]
        outs += [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(outs, 1)


# Fig. 5: #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, pool proj (0 = pass through).
BN_INCEPTION_TABLE: dict[str, BNInceptionSpec] = {
    "inception3a": BNInceptionSpec(64, 64, 64, 64, 96, "avg", 32),
    "inception3b": BNInceptionSpec(64, 64, 96, 64, 96, "avg", 64),
    "inception3c": BNInceptionSpec(0, 128, 160, 64, 96, "max", 0, stride=2),
    "inception4a": BNInceptionSpec(224, 64, 96, 96, 128, "avg", 128),
    "inception4b": BNInceptionSpec(192, 96, 128, 96, 128, "avg", 128),
    "inception4c": BNInceptionSpec(160, 128, 160, 128, 160, "avg", 128),
    "inception4d": BNInceptionSpec(96, 128, 192, 160, 192, "avg", 128),
    "inception4e": BNInceptionSpec(0, 128, 192, 192, 256, "max", 0, stride=2),
    "inception5a": BNInceptionSpec(352, 192, 320, 160, 224, "avg", 128),
    "inception5b": BNInceptionSpec(352, 192, 320, 192, 224, "max", 128),
}


class SeparableStem(nn.Sequential):
    """The paper's first layer: depthwise 7x7/2 (depth multiplier 8, no BN between) -> 1x1 -> BN -> ReLU."""

    def __init__(self, in_chans: int, out_channels: int, block: ConvBlock, depth_multiplier: int = 8):
        super().__init__()
        self.depthwise = nn.Conv2d(in_chans, in_chans * depth_multiplier, 7, stride=2, padding=3,
                                   groups=in_chans, bias=False)
        self.pointwise = block(in_chans * depth_multiplier, out_channels, kernel_size=1)


class BNInceptionNet(ConvNet):
    """BN-Inception: conv 7x7/2 -> pool -> 1x1 -> 3x3 -> pool -> 3a-3c -> 4a-4e -> 5a-5b -> pool -> fc."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, separable_stem: bool = False,
                 drop_rate: float = 0.0, img_size: int = 224):
        super().__init__()
        block = conv_block(norm="bn")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.conv1 = (SeparableStem(in_chans, 64, block) if separable_stem else
                      block(in_chans, 64, kernel_size=7, stride=2, padding=3))
        self.pool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_reduce = block(64, 64, kernel_size=1)
        self.conv2 = block(64, 192, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 192
        for name, spec in BN_INCEPTION_TABLE.items():
            module = BNInception(channels, spec, block)
            setattr(self, name, module)
            channels = module.out_channels
        self.num_features = channels
        self.head = ClassifierHead(channels, num_classes, drop_rate)
        self.feature_info = [
            FeatureInfo("conv1", 64, 2), FeatureInfo("conv2", 192, 4), FeatureInfo("inception3b", 320, 8),
            FeatureInfo("inception4d", self.inception4d.out_channels, 16),
            FeatureInfo("inception5b", channels, 32)]
        self.data_config = data_config_for(in_chans, img_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x 224 x 224
        x = self.pool1(self.conv1(x))
        # N x 64 x 56 x 56
        x = self.pool2(self.conv2(self.conv2_reduce(x)))
        # N x 192 x 28 x 28
        x = self.inception3b(self.inception3a(x))
        # N x 320 x 28 x 28
        x = self.inception3c(x)
        # N x 576 x 14 x 14
        x = self.inception4d(self.inception4c(self.inception4b(self.inception4a(x))))
        # N x 608 x 14 x 14
        x = self.inception4e(x)
        # N x 1056 x 7 x 7; 5a and 5b give N x 1024 x 7 x 7
        return self.inception5b(self.inception5a(x))


@register_model
def bn_inception(num_classes: int = 1000, in_chans: int = 3, separable_stem: bool = False,
                 drop_rate: float = 0.0, img_size: int = 224) -> BNInceptionNet:
    """BN-Inception (the BN paper's Fig. 5); plain 7x7 stem as the Caffe model unless `separable_stem`."""
    return BNInceptionNet(num_classes, in_chans, separable_stem, drop_rate, img_size)
