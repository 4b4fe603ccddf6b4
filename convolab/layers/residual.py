"""Residual blocks: basic and bottleneck (He et al. 2015), their pre-activation forms (He et al.
2016), and the two shortcuts for a change of shape: option A (zero-pad) and option B (projection).
`shortcut="none"` drops the shortcut altogether: the block of the paper's plain nets (sec. 4.1-4.2).

Module names follow torchvision (`conv1`, `bn1`, ..., `downsample`) so its state dicts load as is.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_channels
from ._inplace import not_the_input
from .checkpointing import Checkpointed

NormLayer = Callable[[int], nn.Module]
Shortcut = Literal["A", "B", "none"]


class PadShortcut(nn.Module):
    """Option A: subsample by the stride and zero-pad the new channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a zero-pad shortcut cannot shrink channels ({in_channels} -> {out_channels})")
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x ceil(H/stride) x ceil(W/stride), the new channels zeros."""
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        # the new channels split around the old ones, as the common PyTorch port (akamaster/pytorch_resnet_cifar10)
        # does; fb.resnet.torch appends them after the old: from scratch, the same network with channels reordered
        front = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, front, self.extra - front))


def projection_shortcut(in_channels: int, out_channels: int, stride: int = 1,
                        norm_layer: NormLayer | None = nn.BatchNorm2d) -> nn.Sequential:
    """Option B: 1x1 convolution (with the stride), then norm; torchvision's `downsample`."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels))
    return nn.Sequential(*layers)


def make_shortcut(in_channels: int, out_channels: int, stride: int, shortcut: Shortcut = "B",
                  norm_layer: NormLayer | None = nn.BatchNorm2d) -> nn.Module | None:
    """The shortcut module a block needs: option A or B where the shape changes; None where it does
    not (the block adds its input as is) or where `shortcut="none"` (the block adds nothing)."""
    if shortcut not in ("A", "B", "none"):
        raise ValueError(f"shortcut must be 'A' (zero-pad), 'B' (1x1 projection) or 'none' (a plain net), "
                         f"not {shortcut!r}")
    if shortcut == "none" or (stride == 1 and in_channels == out_channels):
        return None
    if shortcut == "A":
        return PadShortcut(in_channels, out_channels, stride)
    return projection_shortcut(in_channels, out_channels, stride, norm_layer)


def _refuse_stride_in_1x1(block: str, stride_in_1x1: bool) -> None:
    """A basic block takes the option (every block has one signature) but has no 1x1 to put a stride on."""
    if stride_in_1x1:
        raise ValueError(f"{block}: stride_in_1x1 applies to bottleneck nets only (a basic block has no 1x1 conv)")


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(Checkpointed, nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU (ResNet-18/34, CIFAR).

    With `shortcut="none"` nothing is added: conv-BN-ReLU-conv-BN-ReLU, the plain nets' block.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: Shortcut = "B",
                 norm_layer: NormLayer = nn.BatchNorm2d, stride_in_1x1: bool = False):
        super().__init__()
        check_channels("BasicBlock", in_channels=in_channels, planes=planes)
        _refuse_stride_in_1x1("BasicBlock", stride_in_1x1)
        out_channels = planes * self.expansion
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, out_channels)
        self.bn2 = norm_layer(out_channels)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer)
        self.residual = shortcut != "none"
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x ceil(H/stride) x ceil(W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(Checkpointed, nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), plus the shortcut, then ReLU (ResNet-50/101/152).

    `stride_in_1x1=False` puts the stride on the 3x3 (torchvision, "v1.5"); True puts it on the
    first 1x1 as the paper does (v1): same parameters, fewer MACs (the first 1x1 then outputs
    the strided map) and, per torchvision's notes, about 0.5 % lower top-1.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: Shortcut = "B",
                 norm_layer: NormLayer = nn.BatchNorm2d, stride_in_1x1: bool = False):
        super().__init__()
        check_channels("Bottleneck", in_channels=in_channels, planes=planes)
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv1x1(in_channels, planes, stride_1x1)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride_3x3)
        self.bn2 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, out_channels)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer)
        self.residual = shortcut != "none"
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x ceil(H/stride) x ceil(W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class _PreActShortcut:
    """The shortcut of a pre-activation block: the activated input `pre` where it projects or is the
    net's first unit (He et al. 2016, Appendix), else the block's input `x` as is."""

    downsample: nn.Module | None
    first_unit: bool

    def _shortcut(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(pre)
        return pre if self.first_unit else x


class PreActBasicBlock(Checkpointed, _PreActShortcut, nn.Module):
    """BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus the shortcut; no ReLU after the add.

    A projection shortcut takes the pre-activated input (He et al. 2016), so it is a bare 1x1 conv.
    `first_unit=True` (the net's first block) adds the activated input on an identity shortcut too:
    "we adopt the first activation right after conv1 and before splitting into two paths" (Appendix).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: Shortcut = "B",
                 norm_layer: NormLayer = nn.BatchNorm2d, stride_in_1x1: bool = False, first_unit: bool = False):
        super().__init__()
        check_channels("PreActBasicBlock", in_channels=in_channels, planes=planes)
        _refuse_stride_in_1x1("PreActBasicBlock", stride_in_1x1)
        out_channels = planes * self.expansion
        self.bn1 = norm_layer(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, out_channels)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer=None)
        self.residual = shortcut != "none"
        self.first_unit = first_unit
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x ceil(H/stride) x ceil(W/stride), not activated."""
        pre = self.relu(not_the_input(self.bn1(x), x))  # (an nn.Identity norm: x itself, kept for the shortcut)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.residual:
            out = out + self._shortcut(x, pre)
        return out


class PreActBottleneck(Checkpointed, _PreActShortcut, nn.Module):
    """BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), plus the shortcut; no ReLU after the add.

    A projection shortcut, and with `first_unit=True` an identity one, takes the activated input.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: Shortcut = "B",
                 norm_layer: NormLayer = nn.BatchNorm2d, stride_in_1x1: bool = False, first_unit: bool = False):
        super().__init__()
        check_channels("PreActBottleneck", in_channels=in_channels, planes=planes)
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = norm_layer(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = _conv1x1(in_channels, planes, stride_1x1)
        self.bn2 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride_3x3)
        self.bn3 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, out_channels)
        self.downsample = make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer=None)
        self.residual = shortcut != "none"
        self.first_unit = first_unit
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_channels x H x W -> N x out_channels x ceil(H/stride) x ceil(W/stride), not activated."""
        pre = self.relu(not_the_input(self.bn1(x), x))  # (an nn.Identity norm: x itself, kept for the shortcut)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.residual:
            out = out + self._shortcut(x, pre)
        return out


ResidualBlock = type[BasicBlock] | type[Bottleneck] | type[PreActBasicBlock] | type[PreActBottleneck]


def make_stage(block: ResidualBlock, in_channels: int, planes: int, num_blocks: int, stride: int,
               shortcut: Shortcut = "B", norm_layer: NormLayer = nn.BatchNorm2d,
               stride_in_1x1: bool = False) -> nn.Sequential:
    """`num_blocks` blocks; only the first changes the stride and channel count."""
    if num_blocks < 1:
        raise ValueError(f"make_stage: num_blocks must be >= 1, got {num_blocks}")
    make = partial(block, shortcut=shortcut, norm_layer=norm_layer, stride_in_1x1=stride_in_1x1)
    blocks = [make(in_channels, planes, stride)]
    blocks += [make(planes * block.expansion, planes, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
