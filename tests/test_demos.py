"""`convolab demo NAME` prints the source articles' figures; the training demos train through the
engine and end with `test accuracy: 0.xxxx`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from convolab import create_model
from convolab.analysis.counting import count_macs, count_params
from convolab.cli import demo as demo_cli
from convolab.cli import main
from convolab.demos import get_demo, list_demos
from convolab.demos.convolution import learn_edge_kernel, lenet_shapes
from convolab.errors import ConfigError

ACCURACY = re.compile(r"^test accuracy: (0\.\d{4})$")


def _demo(capsys, *argv: str) -> list[str]:
    assert main(["demo", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def test_demo_without_a_name_lists_every_demo(capsys):
    listed = [line.split()[0] for line in _demo(capsys)]
    assert listed == ["corr2d", "edge-kernel", "shapes", "pooling", "bottleneck", "inception-mnist",
                      "resnet-mnist", "batchnorm"]
    assert [line.split()[0] for line in _demo(capsys, "--list")] == listed
    assert {d.name for d in list_demos() if d.trains} == {"inception-mnist", "resnet-mnist"}


def test_the_batchnorm_demo_runs_the_reproduce_experiment_quick_on_mnist5k(capsys, tmp_path, monkeypatch):
    """The demo moved to `convolab reproduce batchnorm` (whose quick form test_reproduce trains); its old
    name hands the experiment its quick form, mnist5k, the seed and the folder."""
    calls = []

    def run_experiment(experiment, output, base, quick, command, default_stem=None):
        calls.append((experiment.name, output, base.data, base.seed, base.progress, quick, default_stem))
        return True, "batchnorm: ... reproduced", Path(output) / "reproduce.md"

    monkeypatch.setattr(demo_cli, "run_experiment", run_experiment)
    lines = _demo(capsys, "batchnorm", "--output", str(tmp_path / "bn"), "--seed", "3", "--no-progress")
    assert calls == [("batchnorm", str(tmp_path / "bn"), "mnist5k", 3, False, True, None)]  # (None: --output given)
    assert lines[0] == "demo batchnorm is now `convolab reproduce batchnorm`; running its quick form on mnist5k"
    assert lines[-1] == "batchnorm: ... reproduced"  # (its refusal of --epochs is a row of test_bad_inputs)


def test_corr2d_demo_prints_the_articles_19_25_37_43(capsys):
    out = "\n".join(_demo(capsys, "corr2d"))
    assert "corr2d(X, K) = [[19, 25], [37, 43]]" in out
    assert "[[56, 72], [104, 120]]" in out  # two input channels, summed
    assert "equals conv2d with a 2x3x1x1 kernel: True" in out  # 1x1 convolution as a matrix product
    # (what the 1x1 part multiplies is printed, so that X0 - X2 = -18 can be checked by hand)
    assert "X = arange(27) as 3 channels of 3x3 (X0 = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]" in out
    assert "weight = [[1, 0, -1], [0.50, 0.50, 0.50]]" in out


def test_edge_kernel_demo_prints_the_image_the_edge_map_and_ends_with_the_learned_kernel(capsys):
    lines = _demo(capsys, "edge-kernel")
    assert lines.count("  [1, 1, 0, 0, 0, 0, 1, 1]") == 6
    assert lines.count("  [0, 1, 0, 0, 0, -1, 0]") == 6
    losses = [float(m[2]) for line in lines if (m := re.fullmatch(r"batch (\d), loss (\d+\.\d{3})", line))]
    assert len(losses) == 5 and losses == sorted(losses, reverse=True)  # printed at steps 1, 3, 5, 7, 9
    match = re.fullmatch(r"learned kernel: \[\[(-?\d\.\d\d), (-?\d\.\d\d)\]\]", lines[-1])
    assert match, lines[-1]
    assert abs(float(match[1]) - 1) < 0.1 and abs(float(match[2]) + 1) < 0.1


@pytest.mark.parametrize("seed", range(6))
def test_ten_steps_of_the_articles_loop_recover_the_edge_kernel_within_0_1_from_any_start(seed):
    run = learn_edge_kernel(steps=10, lr=3e-2, seed=seed)
    np.testing.assert_allclose(run.kernel, [[1, -1]], atol=0.1)
    assert [i for i, _ in run.losses] == [1, 3, 5, 7, 9]


def test_shapes_demo_prints_the_articles_padding_and_stride_examples_agreeing_with_nn_conv2d(capsys):
    lines = _demo(capsys, "shapes")
    expected = {"8x8, kernel 3, padding 1 ": "8x8", "kernel (5, 3), padding (2, 1)": "8x8",
                "8x8, kernel 3, padding 1, stride 2": "4x4",
                "kernel (3, 5), padding (0, 1), stride (3, 4)": "2x2"}
    for text, out in expected.items():
        (line,) = [line for line in lines if text in line]
        assert line.endswith(f"-> {out}   nn.Conv2d: {out}"), line
    # (each result worked through, per side)
    assert "      H: floor((8 + 2*0 - 3) / 3) + 1 = 2; W: floor((8 + 2*1 - 5) / 4) + 1 = 2" in lines


def test_shapes_demo_prints_the_lenet_shape_table_of_article_003(capsys):
    lines = _demo(capsys, "shapes")
    shapes = [line.split("output shape: ")[1] for line in lines if "output shape: " in line]
    assert shapes == ["[1, 6, 28, 28]", "[1, 6, 28, 28]", "[1, 6, 14, 14]", "[1, 16, 10, 10]",
                      "[1, 16, 10, 10]", "[1, 16, 5, 5]", "[1, 400]", "[1, 120]", "[1, 120]", "[1, 84]",
                      "[1, 84]", "[1, 10]"]
    assert [kind for kind, _ in lenet_shapes()][:3] == ["Conv2d", "Sigmoid", "AvgPool2d"]


def test_pooling_demo_gives_10_for_arange16_and_the_padded_strided_results(capsys):
    lines = _demo(capsys, "pooling")
    out = "\n".join(lines)
    i = lines.index("max pool 3x3 (stride defaults to the window):")
    assert lines[i + 1:i + 3] == ["  pool2d: [[10]]", "  PyTorch: [[10]]"]
    assert "  pool2d: [[5, 7], [13, 15]]\n  PyTorch: [[5, 7], [13, 15]]" in out
    # (the article's MXNet call: PyTorch's pooling refuses its padding, F.pad of -inf then pooling agrees)
    assert "  pool2d: [[0, 3], [8, 11], [12, 15]]\n  PyTorch: [[0, 3], [8, 11], [12, 15]] (F.max_pool2d(F.pad(" in out
    assert "its PyTorch form" not in out  # (padding (0, 1) is another call, of another result)
    assert "  pool2d: [[1.11, 2.67], [5.67, 10]]\n  PyTorch: [[1.11, 2.67], [5.67, 10]]" in out
    assert "[[[5, 7], [13, 15]], [[6, 8], [14, 16]]] (shape [1, 2, 2, 2])" in out


def test_bottleneck_demo_prints_120m_against_12_4m(capsys):
    out = "\n".join(_demo(capsys, "bottleneck"))
    assert "28*28*32 * 5*5*192 = 120,422,400" in out
    assert "28*28*16 * 1*1*192 = 2,408,448" in out
    assert "28*28*32 * 5*5*16 = 10,035,200" in out
    assert "2,408,448 + 10,035,200 = 12,443,648" in out
    assert "9.68x fewer multiplications" in out
    assert "`convolab cost` takes C x H x W: 192x28x28, designs 1x1:16 5x5:32 against 5x5:32" in out  # (the demo HxWxC)


def test_edge_kernel_takes_a_seed_and_an_unknown_demo_is_named(capsys):
    assert _demo(capsys, "edge-kernel", "--seed", "3")[-1] == "learned kernel: [[0.92, -1.06]]"
    with pytest.raises(ConfigError, match="did you mean corr2d"):
        get_demo("corr2")


def test_lenet5_bn_is_d2l_bn_lenet_44878_parameters_and_44426_without_bn():
    model = create_model("lenet5_bn")
    assert count_params(model) == 44_878
    assert count_macs(model, (1, 28, 28)) == 281_640
    assert count_params(create_model("lenet5_bn", batch_norm=False)) == 44_878 - 2 * (6 + 16 + 120 + 84)


# The residual net is the cheaper of the two (41,514 parameters, a third of the MACs); both run
# the same demo code, and the Inception net's full recipe is checked in the slow test below.
@pytest.mark.parametrize("name", ["resnet-mnist", pytest.param("inception-mnist", marks=pytest.mark.slow)])
def test_one_epoch_of_a_lecture_net_clears_0_85_on_mnist5k(capsys, tmp_path, name):
    lines = _demo(capsys, name, "--epochs", "1", "--output", str(tmp_path), "--no-progress", "--threads", "1")
    assert (tmp_path / "metrics.csv").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["threads"] == 1  # (--threads, as train's)
    assert float(ACCURACY.match(lines[-1])[1]) >= 0.85
    # (the residual net's figure beside the lecture's, which is of another data set)
    assert ("`convolab reproduce lecture-mnist` trains on it" in lines[-2]) is (name == "resnet-mnist")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet-mnist", "inception-mnist"])
def test_the_lecture_nets_reach_0_97_on_mnist5k_with_the_demo_recipe(capsys, tmp_path, name):
    lines = _demo(capsys, name, "--output", str(tmp_path), "--no-progress")
    assert float(ACCURACY.match(lines[-1])[1]) >= 0.97
