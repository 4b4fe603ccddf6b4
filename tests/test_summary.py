"""`convolab.analysis.summary` and `convolab summary`: shapes, parameters, MACs, what did not run."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

import convolab
from convolab.analysis import count_macs, count_params, summary
from convolab.analysis.draw import architecture_graph
from convolab.analysis.summary import kernel_text
from convolab.cli import main
from convolab.errors import ConfigError

LENET_SHAPES = [[1, 6, 28, 28], [1, 6, 28, 28], [1, 6, 14, 14], [1, 16, 10, 10], [1, 16, 10, 10],
                [1, 16, 5, 5], [1, 400], [1, 120], [1, 120], [1, 84], [1, 84], [1, 10]]


class WithAuxHead(nn.Module):
    """A trunk and an auxiliary head that, like GoogLeNet's, runs only in training."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 5))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        out = self.fc(self.pool(x).flatten(1))
        return out + self.aux(x) if self.training else out


class TiedLinears(nn.Module):
    """Two linear layers sharing one weight tensor, and one ReLU called twice."""

    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(6, 6)
        self.decode = nn.Linear(6, 6)
        self.decode.weight = self.encode.weight
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.decode(self.act(self.encode(x.flatten(1)))))


class ListBlocks(nn.Module):
    """Children held in a ModuleList, which is never called itself."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(2, 2, 3, padding=1, groups=2) for _ in range(2)])
        self.unused = nn.ModuleList([nn.Conv2d(2, 2, 1)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_lenet5_rows_give_the_article_shapes_in_order_and_61706_params():
    result = summary(convolab.create_model("lenet5"), (1, 28, 28))
    leaves = [r for r in result.rows if r.depth == 2]
    assert [r.output_shape for r in leaves] == LENET_SHAPES
    assert [r.type for r in leaves][:3] == ["Conv2d", "Sigmoid", "AvgPool2d"]
    assert result.total_params == result.trainable_params == 61_706
    assert sum(r.params for r in leaves) == 61_706
    # 28*28*6*25 + 10*10*16*6*25 + 400*120 + 120*84 + 84*10
    assert result.total_macs == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520
    assert result.flops == 2 * result.total_macs
    assert result.not_run == []
    assert result.not_counted == ["AvgPool2d", "Flatten", "Sigmoid"]


def test_depth_1_keeps_only_the_children_with_their_subtree_totals():
    result = summary(convolab.create_model("lenet5"), (1, 28, 28), depth=1)
    assert [(r.name, r.output_shape) for r in result.rows] == [("features", [1, 16, 5, 5]), ("head", [1, 10])]
    assert [r.params for r in result.rows] == [2_572, 59_134]
    assert sum(r.macs for r in result.rows) == result.total_macs == 416_520


def test_auxiliary_head_is_listed_as_not_run_and_its_macs_are_not_counted():
    model = WithAuxHead()
    result = summary(model, (3, 8, 8))
    assert [(m.name, m.type, m.params) for m in result.not_run] == [("aux", "Sequential", 45)]
    assert "aux" not in {r.name.split(".")[0] for r in result.rows}
    assert result.total_params == count_params(model)  # the aux head's parameters are in the total
    assert result.total_macs == 8 * 8 * 8 * 3 * 9 + 8 * 5 == count_macs(model, (3, 8, 8))
    assert result.not_counted == ["AdaptiveAvgPool2d", "BatchNorm2d", "ReLU"]
    assert model.training  # the summary runs in eval mode and restores the mode


def test_a_shared_parameter_is_counted_once_and_a_reused_module_gets_a_row_per_call():
    model = TiedLinears()
    result = summary(model, (6,))
    assert result.total_params == 36 + 6 + 6 == count_params(model)
    by_name = [(r.name, r.params) for r in result.rows]
    assert by_name == [("encode", 42), ("act", 0), ("decode", 6), ("act", 0)]
    assert sum(r.params for r in result.rows) == result.total_params
    assert result.total_macs == 2 * 36 == count_macs(model, (6,))


def test_module_list_children_run_and_an_unused_list_is_reported():
    model = ListBlocks()
    result = summary(model, (2, 5, 5))
    assert [r.name for r in result.rows] == ["blocks.0", "blocks.1"]
    assert [m.name for m in result.not_run] == ["unused"]
    # grouped conv: (C_in / groups) * kH * kW per output value
    assert result.total_macs == 2 * (5 * 5 * 2 * 1 * 9) == count_macs(model, (2, 5, 5))


def test_torchvision_googlenet_on_meta_matches_reference_and_lists_both_aux_heads():
    with torch.device("meta"):
        model = torchvision.models.googlenet(weights=None, init_weights=True)
    result = summary(model, (3, 224, 224), depth=1)
    assert result.total_macs == 1_498_376_192  # docs/REFERENCE.md 1a
    assert result.total_params == 13_004_888
    assert [(m.name, m.params) for m in result.not_run] == [("aux1", 3_188_968), ("aux2", 3_191_016)]
    assert "BatchNorm2d" in result.not_counted and "MaxPool2d" in result.not_counted


# The two slowest (11 s and 3 s of the default run) run with `pytest -m slow`; the other DenseNets and ResNets
# take the same code paths.
SLOW_SUMMARIES = ("densenet201", "resnet1202")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SUMMARIES else n
                                  for n in convolab.list_models()])
def test_summary_totals_agree_with_count_macs_and_count_params(name):
    with torch.device("meta"):
        model = convolab.create_model(name)
    size = model.data_config.input_size
    result = summary(model, size)
    assert result.total_macs == count_macs(model, size)
    assert result.total_params == count_params(model)
    # every parameter appears exactly once: in the outermost row or not-run module of its branch
    # (a container that is not called itself, like a wrapped backbone, has rows only for its
    # children), or on the model itself
    own = sum(p.numel() for p in model.parameters(recurse=False))
    entries = [(r.name, r.params) for r in result.rows] + [(m.name, m.params) for m in result.not_run]
    names = {name for name, _ in entries}

    def outermost(name: str) -> bool:
        parts = name.split(".")
        return not any(".".join(parts[:i]) in names for i in range(1, len(parts)))

    assert own + sum(params for name, params in entries if outermost(name)) == result.total_params


def _require_googlenet_tv() -> None:
    if "googlenet_tv" not in convolab.list_models():
        pytest.skip("googlenet_tv is not registered yet")


def test_googlenet_tv_totals_1498376192_macs_and_its_aux_heads_did_not_run():
    _require_googlenet_tv()
    with torch.device("meta"):
        model = convolab.create_model("googlenet_tv", aux_logits=True)
    result = summary(model, (3, 224, 224))
    assert result.total_macs == 1_498_376_192  # docs/REFERENCE.md 1a: eval, aux heads not executed
    assert result.total_params == 13_004_888
    assert [(m.name, m.params) for m in result.not_run] == [("aux1", 3_188_968), ("aux2", 3_191_016)]


def test_cli_googlenet_tv_with_aux_logits_lists_both_heads_as_not_run():
    _require_googlenet_tv()
    out = _run_cli(["summary", "googlenet_tv", "--input-size", "3,224,224", "--aux-logits", "--depth", "1"])
    assert "Total MACs: 1,498,376,192" in out
    assert "Did not run: aux1 (" in out and ", aux2 (" in out
    data = json.loads(_run_cli(["summary", "googlenet_tv", "--input-size", "3,224,224", "--aux-logits",
                                "--json"]))
    assert data["total_macs"] == 1_498_376_192
    assert [m["name"] for m in data["not_run"]] == ["aux1", "aux2"]


def test_input_too_small_raises_a_config_error_naming_the_default_size():
    with pytest.raises(ConfigError, match=r"too small for lenet5 \(default size 1x28x28\)"):
        summary(convolab.create_model("lenet5"), (1, 8, 8))


def _run_cli(argv) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def test_cli_table_lists_lenet_shapes_in_order_and_states_what_is_counted():
    out = _run_cli(["summary", "lenet5", "--input-size", "1,28,28"])
    shapes = [s for s in (line[36:].split("]")[0] + "]" for line in out.splitlines()
                          if line.startswith("  ")) if s.startswith("[")]
    assert shapes == [str(s) for s in LENET_SHAPES]
    assert "Total params: 61,706" in out
    assert "Total MACs: 416,520 (Conv2d + Linear multiply-accumulates)" in out
    assert "FLOPs: 833,040 (= 2 x MACs; the \"FLOPs\" of ResNet's paper and many others are multiply-adds" in out
    assert "Not counted: AvgPool2d, Flatten, Sigmoid" in out
    # (the lecture nets pool in their forward code: no row says so, the footer does)
    assert "functional ops in forward code (activations, pooling, adds, concatenations: no row of their own)" in out
    assert "Did not run: none" in out


def test_cli_json_has_totals_layers_and_not_run():
    data = json.loads(_run_cli(["summary", "lenet5", "--json"]))  # default size from data_config
    assert data["input_size"] == [1, 28, 28]
    assert data["total_params"] == 61_706 and data["total_macs"] == 416_520
    assert [row["output_shape"] for row in data["layers"] if row["depth"] == 2] == LENET_SHAPES
    assert data["not_run"] == []


def test_cli_passes_num_classes_and_in_chans_to_the_model():
    data = json.loads(_run_cli(["summary", "lenet5", "--num-classes", "3", "--in-chans", "2", "--json"]))
    assert data["input_size"] == [2, 28, 28]
    assert data["layers"][-1]["output_shape"] == [1, 3]


def test_cli_pretrained_with_other_in_chans_says_the_weights_take_rgb(capsys):
    assert main(["summary", "resnet50", "--pretrained", "--in-chans", "1"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.splitlines() == [
        "convolab summary: error: --in-chans 1 does not fit --pretrained: the weights "
        "torchvision:resnet50.IMAGENET1K_V2 take 3-channel (RGB) input; leave out --in-chans, or leave out "
        "--pretrained to see resnet50 built for 1 channel"]
    data = json.loads(_run_cli(["summary", "resnet50", "--pretrained", "--in-chans", "3", "--depth", "1", "--json"]))
    assert data["input_size"] == [3, 224, 224] and data["total_params"] == 25_557_032


def test_bn_inception_summarizes_between_the_32k_bands():
    # sizes 32k+7 ... 32k+30 were refused as "too small" (110) or "does not fit" (299): the reduction
    # modules' pool and stride-2 convolutions disagreed at odd grids
    for side in (110, 299):
        with torch.device("meta"):
            model = convolab.create_model("bn_inception")
        result = summary(model, (3, side, side))
        assert result.total_params == 11_285_224 and result.rows[-1].output_shape == [1, 1000]


def test_every_task_head_runs_and_counts_and_the_footer_reads_right(tmp_path, capsys):
    """lenet5_two_head's parity head predicts at inference: summary counts its 168 MACs (before: listed as "did
    not run"); draw traces forward_outputs, so the head is in the picture, an input of the output; a model of only
    counted modules says "no module"."""
    two = summary(convolab.create_model("lenet5_two_head"), (1, 28, 28))
    one = summary(convolab.create_model("lenet5"), (1, 28, 28))
    assert two.total_macs == one.total_macs + 84 * 2 and not two.not_run
    assert "Not counted: no module;" in summary(nn.Sequential(nn.Linear(4, 2)), (1, 2, 4)).to_table()
    capsys.readouterr()
    assert main(["draw", "lenet5_two_head", "--out", str(tmp_path / "th.svg")]) == 0
    assert "not drawn" not in capsys.readouterr().out
    graph = architecture_graph(convolab.create_model("lenet5_two_head"), (1, 28, 28))
    output = next(n for n in graph.nodes if n.kind == "output")
    heads = {n.id: n.label for n in graph.nodes if n.id in output.inputs}
    assert sorted(heads.values()) == ["backbone.head.fc", "parity"], heads  # both outputs' paths end in the output


def test_num_classes_0_summarizes_and_draws_the_feature_extractor(tmp_path, capsys):
    """--num-classes 0 is create_model's features-only model (README: num_classes >= 0), on the CLI too."""
    assert main(["summary", "resnet20", "--num-classes", "0"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 269,072" in out  # resnet20's 269,722 less its 64 x 10 + 10 classifier
    assert main(["draw", "resnet20", "--num-classes", "0", "--out", str(tmp_path / "f.svg")]) == 0
    assert (tmp_path / "f.svg").is_file()


def test_each_convolution_and_pooling_row_gives_its_window_stride_and_padding():
    """Article 003's LeNet: 5x5 kernels, the first padded by 2, 2x2 average pooling of stride 2; GoogLeNet's 5x5
    branch against torchvision's 3x3, Inception-v3's 1x7, the adaptive pooling's output, groups and dilation."""
    kernels = {r.name: r.kernel for r in summary(convolab.create_model("lenet5"), (1, 28, 28)).rows}
    assert [kernels[f"features.{i}"] for i in range(6)] == ["5x5 pad 2", "", "2x2 stride 2", "5x5", "",
                                                         "2x2 stride 2"]
    assert kernels["head.fc1"] == ""
    with torch.device("meta"):
        rows = {m: {r.name: r.kernel for r in summary(convolab.create_model(m), (3, 224, 224)).rows}
                for m in ("googlenet", "googlenet_tv")}
        v3 = {r.name: r.kernel for r in summary(convolab.create_model("inception_v3"), (3, 299, 299)).rows}
    assert rows["googlenet"]["inception3a.branch3.1.conv"] == "5x5 pad 2"
    assert rows["googlenet_tv"]["inception3a.branch3.1.conv"] == "3x3 pad 1"
    assert rows["googlenet"]["maxpool1"] == "3x3 stride 2 ceil" and rows["googlenet"]["head.pool"] == "to 1x1"
    assert v3["Mixed_6b.branch7x7_2.conv"] == "1x7 pad 0x3"
    assert kernel_text(nn.Conv2d(64, 64, 3, 2, padding=2, dilation=2, groups=32)) == \
        "3x3 stride 2 pad 2 dilation 2 groups 32"
    assert kernel_text(nn.AdaptiveAvgPool2d((None, 7))) == "to inputx7"
    out = _run_cli(["summary", "lenet5", "--json"])
    assert json.loads(out)["layers"][1]["kernel"] == "5x5 pad 2"


def test_a_row_at_the_depth_asked_lists_the_windows_below_it_where_there_are_a_few():
    """--depth 2 of GoogLeNet: each branch row its windows in order; at --depth 1 a conv-norm-activation gives its
    convolution's, an Inception module (six windows) none, and deeper rows keep their own alone."""
    with torch.device("meta"):
        model = convolab.create_model("googlenet")
    two = {r.name: r.kernel for r in summary(model, (3, 224, 224), depth=2).rows}
    assert two["inception3a.branch3"] == "1x1, 5x5 pad 2" and two["inception3a.branch4"] == "3x3 pad 1 ceil, 1x1"
    one = {r.name: r.kernel for r in summary(model, (3, 224, 224), depth=1).rows}
    assert one["conv1"] == "7x7 stride 2 pad 3" and one["inception3a"] == "" and one["head"] == "to 1x1"
    full = {r.name: r.kernel for r in summary(model, (3, 224, 224)).rows}
    assert full["conv1"] == "" and full["conv1.conv"] == "7x7 stride 2 pad 3"  # (the window on its own row only)
