"""Convolution followed by optional normalization and activation, the unit most networks repeat.

Blocks take a `conv_block` factory (`partial(ConvNormAct, norm_layer=..., act_layer=...)`) so the
norm, the activation and the BN eps change in one place for a whole network.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from ._checks import check_channels

ConvBlock = Callable[..., nn.Module]
RELU_INPLACE = partial(nn.ReLU, inplace=True)


def same_padding(kernel_size: int | tuple[int, int], dilation: int | tuple[int, int] = 1) -> int | tuple[int, int]:
    """Padding that keeps H and W at stride 1 for an odd kernel (kernel and dilation each a number or a pair)."""
    if isinstance(kernel_size, tuple) or isinstance(dilation, tuple):
        kernels = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        dilations = dilation if isinstance(dilation, tuple) else (dilation, dilation)
        return tuple(d * (k - 1) // 2 for k, d in zip(kernels, dilations))  # type: ignore[return-value]
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Sequential):
    """conv -> norm -> act. Children are named `conv`, `bn`, `act` (absent ones are left out)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 1,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | None = None,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool | None = None,
                 norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
                 act_layer: Callable[[], nn.Module] | None = RELU_INPLACE):
        super().__init__()
        check_channels("ConvNormAct", in_channels=in_channels, out_channels=out_channels)
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        if bias is None:
            bias = norm_layer is None  # a bias before BN is cancelled by BN's mean
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)
        if norm_layer is not None:
            self.bn = norm_layer(out_channels)
        if act_layer is not None:
            self.act = act_layer()
        self.in_channels = in_channels
        self.out_channels = out_channels


def conv_block(norm: str | None = "bn", act: str | None = "relu", eps: float = 1e-5,
               bias: bool | None = None) -> ConvBlock:
    """A ConvNormAct factory: `conv_block(norm="bn", eps=1e-3)` is torchvision's BasicConv2d."""
    norms: dict[str | None, Callable[[int], nn.Module] | None] = {
        "bn": partial(nn.BatchNorm2d, eps=eps), None: None}
    acts: dict[str | None, Callable[[], nn.Module] | None] = {
        "relu": RELU_INPLACE, "sigmoid": nn.Sigmoid, None: None}
    if norm not in norms:
        raise ValueError(f"norm must be one of {sorted(k for k in norms if k)} or None, not {norm!r}")
    if act not in acts:
        raise ValueError(f"act must be one of {sorted(k for k in acts if k)} or None, not {act!r}")
    return partial(ConvNormAct, norm_layer=norms[norm], act_layer=acts[act], bias=bias)
