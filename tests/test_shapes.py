"""Shape arithmetic of convolution and pooling agrees with the article and with PyTorch."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convolab.errors import ConfigError
from convolab.ops import conv_output_size, pool_output_size


def test_article_padding_keeps_8x8_with_3x3_kernel_and_padding_1():
    assert conv_output_size(8, 3, padding=1) == 8
    assert conv_output_size((8, 8), 3, padding=1) == (8, 8)


def test_article_stride_2_halves_8x8_to_4x4():
    assert conv_output_size((8, 8), 3, padding=1, stride=2) == (4, 4)


def test_article_kernel_3x5_padding_0x1_stride_3x4_gives_2x2():
    assert conv_output_size((8, 8), (3, 5), padding=(0, 1), stride=(3, 4)) == (2, 2)


def test_lenet_shapes_follow_from_the_arithmetic():
    side = conv_output_size(28, 5, padding=2)          # 28
    side = pool_output_size(side, 2)                   # 14
    side = conv_output_size(side, 5)                   # 10
    assert pool_output_size(side, 2) == 5


def test_ceil_mode_drops_a_last_window_that_starts_in_the_padding():
    # 5 + 2*1 = 7 wide, k=2, s=2: ceil mode would give 4 windows, the last one starting at 6 = n + p
    assert pool_output_size(5, 2, stride=2, padding=1, ceil_mode=True) == 3
    assert tuple(nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)(torch.zeros(1, 1, 5, 5)).shape[2:]) == (3, 3)
    # googlenet's ceil-mode pools: 112 -> 56, 28 -> 14 with 3x3/2
    assert pool_output_size(112, 3, stride=2, ceil_mode=True) == 56
    assert pool_output_size(28, 3, stride=2, ceil_mode=True) == 14
    assert pool_output_size(28, 3, stride=2, ceil_mode=False) == 13


@pytest.mark.parametrize("call", [
    lambda: conv_output_size(4, 7),                    # kernel larger than input
    lambda: conv_output_size(8, 3, stride=0),
    lambda: conv_output_size(8, 3, padding=-1),
    lambda: conv_output_size(8, (3, 3, 3)),
    lambda: pool_output_size(8, 3, padding=2),         # padding > kernel // 2
    lambda: pool_output_size(1, 3),
])
def test_invalid_combinations_raise_a_config_error(call):
    with pytest.raises(ConfigError):
        call()


def _torch_size(module: nn.Module, h: int, w: int) -> tuple[int, int] | None:
    """PyTorch's output H, W, or None where PyTorch refuses the combination."""
    try:
        out = module(torch.zeros(1, 1, h, w))
    except (RuntimeError, ValueError):
        return None
    return tuple(out.shape[2:])  # type: ignore[return-value]


def _ours(fn, *args, **kwargs) -> tuple[int, int] | None:
    try:
        return fn(*args, **kwargs)
    except ConfigError:
        return None


sizes = st.integers(1, 40)
kernels = st.integers(1, 7)
strides = st.integers(1, 4)
paddings = st.integers(0, 4)
dilations = st.integers(1, 3)


@settings(max_examples=300, deadline=None)
@given(h=sizes, w=sizes, kh=kernels, kw=kernels, sh=strides, sw=strides, ph=paddings, pw=paddings,
       dh=dilations, dw=dilations)
def test_conv_output_size_matches_nn_conv2d(h, w, kh, kw, sh, sw, ph, pw, dh, dw):
    conv = nn.Conv2d(1, 1, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), bias=False)
    expected = _torch_size(conv, h, w)
    got = _ours(conv_output_size, (h, w), (kh, kw), padding=(ph, pw), stride=(sh, sw), dilation=(dh, dw))
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(h=sizes, w=sizes, kh=kernels, kw=kernels, sh=strides, sw=strides, ph=paddings, pw=paddings,
       dh=dilations, dw=dilations, ceil_mode=st.booleans())
def test_pool_output_size_matches_nn_maxpool2d(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode):
    pool = nn.MaxPool2d((kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil_mode)
    expected = _torch_size(pool, h, w)
    got = _ours(pool_output_size, (h, w), (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                ceil_mode=ceil_mode)
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(h=sizes, w=sizes, kh=kernels, kw=kernels, sh=strides, sw=strides, ph=paddings, pw=paddings,
       ceil_mode=st.booleans())
def test_pool_output_size_matches_nn_avgpool2d(h, w, kh, kw, sh, sw, ph, pw, ceil_mode):
    pool = nn.AvgPool2d((kh, kw), stride=(sh, sw), padding=(ph, pw), ceil_mode=ceil_mode)
    expected = _torch_size(pool, h, w)
    got = _ours(pool_output_size, (h, w), (kh, kw), stride=(sh, sw), padding=(ph, pw), ceil_mode=ceil_mode)
    assert got == expected


def test_default_pool_stride_is_the_kernel_size():
    assert pool_output_size(28, 2) == 14
    assert pool_output_size((28, 27), (2, 3)) == (14, 9)
