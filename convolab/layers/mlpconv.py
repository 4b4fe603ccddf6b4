"""The mlpconv layer of Network in Network (Lin et al. 2013): a spatial convolution followed by
1x1 convolutions, each with ReLU, i.e. a small MLP slid over every pixel."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._checks import check_channels
from .checkpointing import Checkpointed


class MlpConv(Checkpointed, nn.Sequential):
    """conv kxk -> ReLU -> (conv 1x1 -> ReLU) per further width in `channels`."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        if not channels:
            raise ValueError("an mlpconv layer needs at least one output width")
        check_channels("MlpConv", in_channels=in_channels, **{f"channels[{i}]": c for i, c in enumerate(channels)})
        self.add_module("conv", nn.Conv2d(in_channels, channels[0], kernel_size, stride, padding))
        self.add_module("act", nn.ReLU(inplace=True))
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True), start=1):
            self.add_module(f"cccp{i}", nn.Conv2d(c_in, c_out, 1))  # "cascaded cross-channel pooling"
            self.add_module(f"act{i}", nn.ReLU(inplace=True))
        self.out_channels = channels[-1]
