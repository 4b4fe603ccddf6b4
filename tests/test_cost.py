"""`convolab.analysis.cost` and `convolab cost`: the article's bottleneck and factorization figures."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from torch import nn

from convolab.analysis import count_macs, count_params
from convolab.analysis.cost import ConvSpec, compare_designs, design_cost, parse_design, parse_layer
from convolab.cli import main
from convolab.errors import ConfigError


def _cli(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def test_design_strings_parse_kernel_channels_stride_and_padding():
    assert parse_layer("5x5:32") == ConvSpec((5, 5), 32, 1, None)
    assert parse_layer("3x3:64/s2") == ConvSpec((3, 3), 64, 2, None)
    assert parse_layer("3x3:64/s2/p0") == ConvSpec((3, 3), 64, 2, 0)
    assert parse_layer("1x3:64") == ConvSpec((1, 3), 64, 1, None)
    assert [s.text for s in parse_design("1x1:16 5x5:32")] == ["1x1:16", "5x5:32"]


@pytest.mark.parametrize("text", ["5x5-32", "5:32", "5x5:", "3x3:64/s", "3x3:64/x2", "3x3:0", "0x3:8",
                                  "3x3:8/s0", "3x3:8/s2/s2", "", "3x3:64/p-1"])
def test_bad_design_strings_raise_with_the_expected_form(text):
    with pytest.raises(ConfigError, match=r"KxK:CHANNELS\[/sS\]\[/pP\]"):
        parse_design(text) if not text else parse_layer(text)


def test_5x5_on_192x28x28_costs_120422400_multiplications():
    cost = design_cost((192, 28, 28), "5x5:32")
    assert cost.multiplications == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400  # docs/REFERENCE.md 4
    assert cost.output_shape == (32, 28, 28)
    assert cost.weights == 153_600 and cost.params == 153_632


def test_bottleneck_costs_2408448_plus_10035200():
    cost = design_cost((192, 28, 28), ["1x1:16", "5x5:32"])
    assert [layer.multiplications for layer in cost.layers] == [2_408_448, 10_035_200]
    assert cost.multiplications == 12_443_648
    assert [layer.output_shape for layer in cost.layers] == [(16, 28, 28), (32, 28, 28)]
    comparison = compare_designs((192, 28, 28), "1x1:16 5x5:32", "5x5:32")
    assert f"{comparison.ratio('multiplications'):.2f}" == "9.68"


def test_two_3x3_save_28_percent_against_one_5x5_in_multiplications_and_weights():
    comparison = compare_designs((64, 28, 28), "3x3:64 3x3:64", "5x5:64")
    assert comparison.saved("multiplications") == pytest.approx(1 - 18 / 25)
    assert comparison.saved("weights") == pytest.approx(1 - 18 / 25)
    assert round(comparison.saved("params"), 2) == 0.28  # biases move it slightly


def test_1x3_then_3x1_saves_33_percent_against_3x3():
    comparison = compare_designs((64, 28, 28), "1x3:64 3x1:64", "3x3:64")
    assert comparison.saved("multiplications") == pytest.approx(1 / 3)
    assert comparison.saved("weights") == pytest.approx(1 / 3)


def test_costs_agree_with_count_macs_and_count_params_of_real_convolutions():
    design = "7x7:64/s2 3x3:64/s2/p0 1x1:32 3x5:48 5x5:16/s3/p1"
    cost = design_cost((3, 57, 61), design)
    convs, c = [], 3
    for spec in parse_design(design):
        kh, kw = spec.kernel
        padding = (kh // 2, kw // 2) if spec.padding is None else spec.padding
        convs.append(nn.Conv2d(c, spec.out_channels, spec.kernel, stride=spec.stride, padding=padding))
        c = spec.out_channels
    net = nn.Sequential(*convs)
    assert cost.multiplications == count_macs(net, (3, 57, 61))
    assert cost.params == count_params(net)
    assert tuple(net(torch.zeros(1, 3, 57, 61)).shape[1:]) == cost.output_shape


def test_same_padding_gives_ceil_of_size_over_stride_even_for_even_kernels():
    assert design_cost((8, 28, 28), "2x2:8").output_shape == (8, 28, 28)
    assert design_cost((8, 7, 7), "3x3:8/s2").output_shape == (8, 4, 4)


def test_a_layer_larger_than_its_input_is_refused():
    with pytest.raises(ConfigError, match="7x7:8/p0 does not fit"):
        design_cost((3, 4, 4), "7x7:8/p0")


def test_cli_prints_the_article_figures_verbatim():
    assert "multiplications: 120,422,400" in _cli(["cost", "--input", "192x28x28", "5x5:32"])
    out = _cli(["cost", "--input", "192x28x28", "1x1:16", "5x5:32"])
    assert "2,408,448 + 10,035,200 = 12,443,648" in out
    out = _cli(["cost", "--input", "192x28x28", "1x1:16", "5x5:32", "--versus", "5x5:32"])
    assert "12,443,648 vs 120,422,400: 9.68x fewer, 90% saved" in out


def test_cli_factorizations_show_28_and_33_percent_saved():
    out = _cli(["cost", "--input", "64x28x28", "3x3:64", "3x3:64", "--versus", "5x5:64"])
    assert "multiplications: 57,802,752 vs 80,281,600: 1.39x fewer, 28% saved" in out
    assert "weights: 73,728 vs 102,400: 1.39x fewer, 28% saved" in out
    out = _cli(["cost", "--input", "64x28x28", "1x3:64", "3x1:64", "--versus", "3x3:64"])
    assert "multiplications: 19,267,584 vs 28,901,376: 1.50x fewer, 33% saved" in out
    # (in the article's order, the larger design first: its saving is said of the other too)
    out = _cli(["cost", "--input", "64x28x28", "5x5:64", "--versus", "3x3:64", "3x3:64"])
    assert "multiplications: 80,281,600 vs 57,802,752: 1.39x more, 39% added; 3x3:64 3x3:64 saves 28%" in out


def test_cli_json_has_layers_totals_and_comparison():
    data = json.loads(_cli(["cost", "--input", "192x28x28", "1x1:16", "5x5:32", "--versus", "5x5:32",
                            "--json"]))
    assert data["design"]["multiplications"] == 12_443_648
    assert [row["multiplications"] for row in data["design"]["layers"]] == [2_408_448, 10_035_200]
    assert data["versus"]["multiplications"] == 120_422_400
    assert round(data["comparison"]["multiplications"]["ratio"], 2) == 9.68


def test_an_input_written_h_x_w_x_c_as_the_articles_write_it_is_said_to_be_read_as_c_x_h_x_w(caplog):
    """`cost --input 28x28x192` (the bottleneck demo's H x W x C) computed 28 channels of 28x192 pixels in silence:
    1.69x fewer multiplications where the article's input gives 9.68x."""
    _cli(["cost", "--input", "28x28x192", "5x5:32"])
    assert [r.getMessage() for r in caplog.records] == [
        "--input 28x28x192 is read as C x H x W: 28 channels of 28x192 pixels; for 192 channels of 28x28 (H x W x C, "
        "as the articles write it) give --input 192x28x28"]
    caplog.clear()
    for given in ("192x28x28", "3x224x224", "3x32x16"):
        _cli(["cost", "--input", given, "3x3:8"])
    assert not caplog.records
