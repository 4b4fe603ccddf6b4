"""The NumPy reference operations agree with torch.nn.functional over a wide grid of shapes and
settings (hypothesis), and reproduce the worked examples of the source article (001)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convolab.errors import ConfigError
from convolab.ops import batch_norm, conv1x1_as_matmul, conv2d, corr2d, pool2d

ATOL = 1e-5
PROPERTY = settings(max_examples=150, deadline=None)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@st.composite
def conv_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # the input must hold at least one dilated kernel after padding
    side = [max(1, dilation[i] * (kernel[i] - 1) + 1 - 2 * padding[i]) + draw(st.integers(0, 6))
            for i in (0, 1)]
    x = rng.standard_normal((draw(st.integers(1, 2)), c_in, *side))
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    return x, weight, bias, stride, padding, dilation, groups


@PROPERTY
@given(conv_cases())
def test_conv2d_agrees_with_torch_over_strides_paddings_dilations_and_groups(case):
    x, weight, bias, stride, padding, dilation, groups = case
    ours = conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    theirs = F.conv2d(_t(x), _t(weight), None if bias is None else _t(bias), stride=stride, padding=padding,
                      dilation=dilation, groups=groups).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=ATOL)


@st.composite
def pool_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    window = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = None if draw(st.booleans()) else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, window[0] // 2)), draw(st.integers(0, window[1] // 2)))  # PyTorch's limit
    side = [max(1, window[i] - 2 * padding[i]) + draw(st.integers(0, 7)) for i in (0, 1)]
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), *side))
    return x, window, stride, padding


@PROPERTY
@given(pool_cases())
def test_max_pool_agrees_with_torch_max_pool2d(case):
    x, window, stride, padding = case
    ours = pool2d(x, window, stride, padding, mode="max")
    theirs = F.max_pool2d(_t(x), window, stride, padding).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=ATOL)


@PROPERTY
@given(pool_cases())
def test_avg_pool_agrees_with_torch_avg_pool2d_counting_the_padding(case):
    x, window, stride, padding = case
    ours = pool2d(x, window, stride, padding, mode="avg")
    theirs = F.avg_pool2d(_t(x), window, stride, padding).numpy()  # count_include_pad=True by default
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=ATOL)


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6),
       st.integers(1, 5), st.integers(1, 5))
def test_1x1_convolution_as_a_matrix_product_agrees_with_conv2d(seed, n, c_in, c_out, h, w):
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in, 1, 1))
    ours = conv1x1_as_matmul(x, weight)
    np.testing.assert_allclose(ours, F.conv2d(_t(x), _t(weight)).numpy(), atol=ATOL)
    np.testing.assert_allclose(conv1x1_as_matmul(x, weight[:, :, 0, 0]), ours, atol=ATOL)


@st.composite
def norm_cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (1, 1), (3, 2), (5, 4)]))
    n = draw(st.integers(2 if not spatial or spatial == (1, 1) else 1, 4))
    x = rng.standard_normal((n, channels, *spatial)) * 3 + 1
    gamma, beta = rng.standard_normal(channels), rng.standard_normal(channels)
    running_mean, running_var = rng.standard_normal(channels), rng.uniform(0.5, 2, channels)
    momentum = draw(st.sampled_from([0.1, 0.01, 0.5, 1.0]))
    eps = draw(st.sampled_from([1e-5, 1e-3]))
    return x, gamma, beta, running_mean, running_var, momentum, eps


@PROPERTY
@given(norm_cases(), st.booleans())
def test_batch_norm_agrees_with_torch_in_training_and_inference_and_updates_running_stats(case, training):
    x, gamma, beta, running_mean, running_var, momentum, eps = case
    torch_mean, torch_var = _t(running_mean.copy()), _t(running_var.copy())
    ours = batch_norm(x, gamma, beta, eps, training, running_mean, running_var, momentum)
    theirs = F.batch_norm(_t(x), torch_mean, torch_var, _t(gamma), _t(beta), training, momentum, eps).numpy()
    np.testing.assert_allclose(ours, theirs, atol=ATOL)
    np.testing.assert_allclose(running_mean, torch_mean.numpy(), atol=ATOL)
    np.testing.assert_allclose(running_var, torch_var.numpy(), atol=ATOL)


def test_corr2d_reproduces_the_articles_3x3_example():
    X = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    K = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(corr2d(X, K), [[19, 25], [37, 43]])


def test_a_convolution_layer_is_cross_correlation_plus_a_bias():
    X = np.arange(9.0).reshape(3, 3)
    K = np.array([[0.0, 1.0], [2.0, 3.0]])
    y = conv2d(X[None, None], K[None, None], bias=np.array([0.5]))
    np.testing.assert_array_equal(y[0, 0], corr2d(X, K) + 0.5)


def test_multi_channel_input_sums_the_cross_correlations_of_each_channel():
    X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]], dtype=float)
    K = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]], dtype=float)
    np.testing.assert_array_equal(conv2d(X[None], K[None])[0, 0], [[56, 72], [104, 120]])
    np.testing.assert_array_equal(conv2d(X[None], K[None])[0, 0], corr2d(X[0], K[0]) + corr2d(X[1], K[1]))


def test_edge_kernel_marks_the_edges_of_the_band_of_zeros():
    X = np.ones((6, 8))
    X[:, 2:6] = 0
    Y = corr2d(X, np.array([[1, -1]]))
    expected_row = [0, 1, 0, 0, 0, -1, 0]
    np.testing.assert_array_equal(Y, np.tile(expected_row, (6, 1)))


def test_max_pooling_of_arange16_with_window_3_gives_10_with_the_stride_defaulting_to_the_window():
    X = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(pool2d(X, 3), [[[[10]]]])
    np.testing.assert_array_equal(pool2d(X, 3, padding=1, stride=2), [[[[5, 7], [13, 15]]]])


def test_pooling_takes_the_articles_mxnet_padding_that_pytorch_refuses():
    X = np.arange(16.0).reshape(1, 1, 4, 4)
    # nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)) in the article; PyTorch allows padding <= k/2
    np.testing.assert_array_equal(pool2d(X, (2, 3), stride=(2, 3), padding=(1, 2)),
                                  [[[[0, 3], [8, 11], [12, 15]]]])
    with pytest.raises(RuntimeError):
        F.max_pool2d(_t(X), (2, 3), (2, 3), (1, 2))
    with pytest.raises(ConfigError, match="only padding"):
        pool2d(X, 2, padding=2)


def test_pooling_keeps_each_channel_separate():
    X = np.arange(16.0).reshape(1, 1, 4, 4)
    X2 = np.concatenate([X, X + 1], axis=1)
    np.testing.assert_array_equal(pool2d(X2, 3, padding=1, stride=2),
                                  [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]])


def test_batch_norm_inference_with_the_batch_statistics_equals_the_training_form():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(batch_norm(x, training=False, running_mean=mean, running_var=var),
                               batch_norm(x, training=True), atol=1e-12)
    y = batch_norm(x, gamma=np.full(3, 2.0), beta=np.full(3, 1.0))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 1.0, atol=1e-12)  # beta shifts each map
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 2.0, atol=1e-4)  # gamma scales it


@pytest.mark.parametrize("call, message", [
    (lambda: conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))), "input channels"),
    (lambda: conv2d(np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3)), groups=2), "groups=2"),
    (lambda: conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))), "larger than"),
    (lambda: conv2d(np.zeros((4, 4)), np.zeros((1, 1, 3, 3))), "4-d"),
    (lambda: pool2d(np.zeros((1, 1, 4, 4)), 2, mode="median"), "mode"),
    (lambda: batch_norm(np.zeros((1, 3))), "more than one value"),
    (lambda: batch_norm(np.zeros((2, 3)), training=False), "running_mean"),
    (lambda: conv1x1_as_matmul(np.zeros((1, 3, 2, 2)), np.zeros((2, 3, 3, 3))), "1 x 1"),
])
def test_bad_arguments_are_refused_with_a_message_naming_them(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
