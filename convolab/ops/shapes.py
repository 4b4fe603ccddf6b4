"""Shape arithmetic of convolution and pooling: the output size for a given input, kernel,
padding, stride and dilation, by PyTorch's rules.

Padding is per side, as in `nn.Conv2d(padding=p)`: an 8x8 input with a 3x3 kernel and padding 1
stays 8x8; with stride 2 it becomes 4x4. Every argument is an int or an (H, W) pair; the result
is an int when all are ints, else an (H, W) pair.
"""
from __future__ import annotations

import numbers

from ..errors import ConfigError

Size = int | tuple[int, int]


def _pair(value: Size, name: str) -> tuple[int, int]:
    """(value, value) of an int, the pair of a pair of ints (numbers.Integral: numpy's integers too); anything
    else (a float, a bool, a pair of floats, which would be cut to ints silently) refused."""
    if _is_int(value):
        return int(value), int(value)  # type: ignore[arg-type]
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ConfigError(f"{name} must be an int or a pair of ints, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_scalar(*values: object) -> bool:
    return all(_is_int(v) for v in values)


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}")


def _conv_1d(n: int, k: int, p: int, s: int, d: int) -> int:
    for name, value in (("input size", n), ("kernel_size", k), ("stride", s), ("dilation", d)):
        _check_positive(name, value)
    if p < 0:
        raise ConfigError(f"padding must be >= 0, got {p}")
    span = d * (k - 1) + 1  # the input extent one output value sees
    if n + 2 * p < span:
        raise ConfigError(f"kernel of extent {span} (kernel_size {k}, dilation {d}) is larger than "
                          f"the padded input {n} + 2*{p} = {n + 2 * p}")
    return (n + 2 * p - span) // s + 1


def _pool_1d(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    for name, value in (("input size", n), ("kernel_size", k), ("stride", s), ("dilation", d)):
        _check_positive(name, value)
    if p < 0:
        raise ConfigError(f"padding must be >= 0, got {p}")
    if p > k // 2:  # PyTorch refuses windows that could lie entirely in the padding
        raise ConfigError(f"padding must be at most half the kernel size, got padding {p} for kernel {k}")
    numerator = n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    # ceil_mode may add a window that starts in the right padding; PyTorch drops that one
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    if out < 1:
        raise ConfigError(f"pooling window of extent {d * (k - 1) + 1} does not fit the padded input "
                          f"{n} + 2*{p} = {n + 2 * p}")
    return out


def conv_output_size(n: Size, kernel_size: Size, padding: Size = 0, stride: Size = 1,
                     dilation: Size = 1) -> Size:
    """`floor((n + 2p - d(k-1) - 1) / s) + 1` per dimension, as `nn.Conv2d` computes it."""
    if _is_scalar(n, kernel_size, padding, stride, dilation):
        return _conv_1d(n, kernel_size, padding, stride, dilation)  # type: ignore[arg-type]
    args = [_pair(v, name) for v, name in ((n, "input size"), (kernel_size, "kernel_size"),
                                           (padding, "padding"), (stride, "stride"), (dilation, "dilation"))]
    return tuple(_conv_1d(*(a[i] for a in args)) for i in range(2))  # type: ignore[return-value]


def pool_output_size(n: Size, kernel_size: Size, stride: Size | None = None, padding: Size = 0,
                     dilation: Size = 1, ceil_mode: bool = False) -> Size:
    """Output size of `nn.MaxPool2d` / `nn.AvgPool2d` (stride defaults to the kernel size)."""
    if stride is None:
        stride = kernel_size
    if _is_scalar(n, kernel_size, stride, padding, dilation):
        return _pool_1d(n, kernel_size, stride, padding, dilation, ceil_mode)  # type: ignore[arg-type]
    args = [_pair(v, name) for v, name in ((n, "input size"), (kernel_size, "kernel_size"),
                                           (stride, "stride"), (padding, "padding"), (dilation, "dilation"))]
    return tuple(_pool_1d(*(a[i] for a in args), ceil_mode) for i in range(2))  # type: ignore[return-value]
