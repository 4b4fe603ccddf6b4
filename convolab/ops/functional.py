"""Reference operations in NumPy: cross-correlation, convolution, pooling, 1x1 convolution as a
matrix product, and batch normalization, written to be read and checked against
`torch.nn.functional` (tests/test_ops_reference.py does that over a wide grid of settings).

Arrays are NCHW, convolution weights OIHW. Padding is per side, as in PyTorch.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError
from .shapes import _pair, conv_output_size

Size = int | tuple[int, int]

POOL_MODES = ("max", "avg")


def _check_ndim(x: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if x.ndim != ndim:
        raise ConfigError(f"{name} must be a {ndim}-d array ({layout}), got shape {tuple(x.shape)}")


def corr2d(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """2-D cross-correlation of one H x W array with one kh x kw kernel, no padding, stride 1.

    The article's loop `Y[i, j] = (X[i:i+h, j:j+w] * K).sum()`, done for all (i, j) at once.
    """
    X, K = np.asarray(X), np.asarray(K)
    _check_ndim(X, 2, "X", "H x W")
    _check_ndim(K, 2, "K", "kh x kw")
    if K.shape[0] > X.shape[0] or K.shape[1] > X.shape[1]:
        raise ConfigError(f"kernel {K.shape} is larger than the input {X.shape}")
    windows = sliding_window_view(X, K.shape)  # (H-kh+1) x (W-kw+1) x kh x kw, a view: no copy
    return np.einsum("ijkl,kl->ij", windows, K)


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
             ) -> np.ndarray:
    """N x C x Ho x Wo x kh x kw view of the (already padded) input: every window a kernel sees."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)  # a dilated kernel's extent
    windows = sliding_window_view(x, span, axis=(2, 3))
    return windows[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: Size = 1,
           padding: Size = 0, dilation: Size = 1, groups: int = 1) -> np.ndarray:
    """Multi-channel 2-D convolution (cross-correlation, as in deep learning) like `F.conv2d`.

    x: N x C_in x H x W; weight: C_out x C_in/groups x kh x kw; bias: C_out. Each output channel
    sums the cross-correlations of its group's input channels with its kernels, plus its bias.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    _check_ndim(x, 4, "x", "N x C x H x W")
    _check_ndim(weight, 4, "weight", "C_out x C_in/groups x kh x kw")
    n, c_in, h, w = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if groups < 1 or c_in % groups or c_out % groups:
        raise ConfigError(f"groups={groups} must divide both input channels {c_in} and output channels "
                          f"{c_out}")
    if c_per_group * groups != c_in:
        raise ConfigError(f"weight expects {c_per_group * groups} input channels ({c_per_group} per group x "
                          f"{groups} groups), the input has {c_in}")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    out_h, out_w = conv_output_size((h, w), (kh, kw), padding, stride, dilation)  # validates, too
    (ph, pw) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = _windows(xp, (kh, kw), stride, dilation)[:, :, :out_h, :out_w]
    # Split channels into groups: input N x G x C/G x ..., weight G x O/G x C/G x kh x kw.
    windows = windows.reshape(n, groups, c_per_group, out_h, out_w, kh, kw)
    kernels = weight.reshape(groups, c_out // groups, c_per_group, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", windows, kernels, optimize=True)
    y = y.reshape(n, c_out, out_h, out_w)
    if bias is not None:
        bias = np.asarray(bias)
        if bias.shape != (c_out,):
            raise ConfigError(f"bias must have shape ({c_out},), one per output channel, got {bias.shape}")
        y = y + bias.reshape(1, c_out, 1, 1)
    return y


def pool2d(x: np.ndarray, window: Size, stride: Size | None = None, padding: Size = 0,
           mode: str = "max") -> np.ndarray:
    """Max or average pooling of each channel, like `F.max_pool2d` / `F.avg_pool2d`.

    The stride defaults to the window (as in MXNet's MaxPool2D and PyTorch). Max pooling pads with
    -inf; average pooling pads with zeros and divides by the full window (PyTorch's default
    `count_include_pad=True`). PyTorch allows padding up to half the window; this also takes the
    larger paddings MXNet accepts (the article's (2, 3) window with padding (1, 2)), up to but
    excluding the window size, beyond which a window could see only padding.
    """
    x = np.asarray(x)
    _check_ndim(x, 4, "x", "N x C x H x W")
    if mode not in POOL_MODES:
        raise ConfigError(f"mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    window = _pair(window, "window")
    stride = window if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    for k, p in zip(window, padding, strict=True):
        if p >= k:
            raise ConfigError(f"padding {padding} must be smaller than the window {window}: a window would "
                              "see only padding")
    out_h, out_w = conv_output_size(x.shape[2:], window, padding, stride)
    (ph, pw) = padding
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x.astype(np.result_type(x.dtype, np.float32), copy=False),
                ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    windows = _windows(xp, window, stride, (1, 1))[:, :, :out_h, :out_w]
    if mode == "max":
        return windows.max(axis=(-2, -1))
    return windows.mean(axis=(-2, -1))


def conv1x1_as_matmul(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """A 1x1 convolution as one matrix product over channels: (C_out x C_in) @ (C_in x H*W) per image.

    It is a fully connected layer applied at every pixel: no spatial mixing, only channels.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    _check_ndim(x, 4, "x", "N x C x H x W")
    if weight.ndim == 4:
        if weight.shape[2:] != (1, 1):
            raise ConfigError(f"a 1x1 convolution needs a C_out x C_in x 1 x 1 weight, got {weight.shape}")
        weight = weight[:, :, 0, 0]
    _check_ndim(weight, 2, "weight", "C_out x C_in")
    n, c, h, w = x.shape
    if weight.shape[1] != c:
        raise ConfigError(f"weight has {weight.shape[1]} input channels, the input has {c}")
    return (weight @ x.reshape(n, c, h * w)).reshape(n, weight.shape[0], h, w)


def batch_norm(x: np.ndarray, gamma: np.ndarray | None = None, beta: np.ndarray | None = None,
               eps: float = 1e-5, training: bool = True, running_mean: np.ndarray | None = None,
               running_var: np.ndarray | None = None, momentum: float = 0.1) -> np.ndarray:
    """Batch normalization of N x C (x H x W ...) activations, one mean/variance and one (gamma, beta)
    pair per channel (per feature map in a convolutional network), like `F.batch_norm`.

    Training: normalize with the batch's mean and (biased) variance over every axis but C, and,
    when running statistics are given, update them in place as PyTorch does:
    `running = (1 - momentum) * running + momentum * batch`, with the unbiased variance.
    Inference (`training=False`): normalize with the running statistics.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ConfigError(f"x must be N x C or N x C x ..., got shape {tuple(x.shape)}")
    c = x.shape[1]
    per_channel = (1, c) + (1,) * (x.ndim - 2)  # broadcast a (C,) vector over N and the spatial axes
    if training:
        axes = (0, *range(2, x.ndim))
        count = x.size // c
        if count < 2:
            raise ConfigError(f"training-mode batch norm needs more than one value per channel, got shape "
                              f"{tuple(x.shape)}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)  # biased (divide by count): what the normalization uses
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * count / (count - 1)  # unbiased, as PyTorch keeps it
    else:
        if running_mean is None or running_var is None:
            raise ConfigError("inference-mode batch norm needs running_mean and running_var")
        mean, var = np.asarray(running_mean), np.asarray(running_var)
    y = (x - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + eps)
    if gamma is not None:
        y = y * np.asarray(gamma).reshape(per_channel)
    if beta is not None:
        y = y + np.asarray(beta).reshape(per_channel)
    return y
