"""Extending convolab from Python: models registered from outside the package (with or without convolab's
blocks and `data_config`), the checks `register_model` makes, and the blocks of `convolab.layers` refusing
widths below 1 where they are built rather than at their first forward."""
from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest
import torch
from torch import nn

import convolab
from convolab import _registry, create_model, register_model
from convolab.analysis.catalog import model_catalog
from convolab.cli import main
from convolab.errors import ConfigError, RegistryError
from convolab.layers import (
    BasicBlock,
    Bottleneck,
    ClassifierHead,
    ConvNormAct,
    DenseBlock,
    DenseLayer,
    InceptionV3A,
    InceptionV3ASpec,
    MlpConv,
    PreActBasicBlock,
    PreActBottleneck,
    ReductionA,
    ReductionASpec,
    Transition,
    conv_block,
    make_stage,
    tower,
)

pytestmark = pytest.mark.usefixtures("fresh_registry")  # (tests/conftest.py)


def register_plain_and_unbuildable() -> None:
    """A plain nn.Sequential (no data_config) and a model that needs an option to be built."""

    @register_model
    def ext_plain(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, num_classes))

    @register_model
    def ext_needs_width(width: int, num_classes: int = 10, in_chans: int = 1) -> nn.Module:
        return nn.Conv2d(in_chans, width, 3)


# ----- 1. `convolab models` with models that lack figures ----------------------------------------------
def test_catalog_gives_none_and_a_note_for_the_figures_a_registered_model_lacks():
    register_plain_and_unbuildable()
    rows = {row["name"]: row for row in model_catalog("ext_*")}
    plain, unbuildable = rows["ext_plain"], rows["ext_needs_width"]
    assert plain["params"] == 8 * 9 + 8 + 8 * 10 + 10
    assert plain["macs"] is None and plain["input_size"] is None
    assert "no data_config" in plain["note"] and "--input-size" in plain["note"]
    assert unbuildable["params"] is None and unbuildable["macs"] is None and unbuildable["input_size"] is None
    assert "cannot be built with its default options" in unbuildable["note"] and "width" in unbuildable["note"]
    lenet = model_catalog("lenet5")[0]
    assert lenet["note"] is None and lenet["macs"] == 416_520 and lenet["input_size"] == [1, 28, 28]


def test_convolab_models_lists_every_model_and_a_dash_for_what_it_cannot_compute(capsys):
    register_plain_and_unbuildable()
    assert main(["models"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["ext_plain"][1:4] == ["170", "-", "-"]
    assert rows["ext_needs_width"][1:4] == ["-", "-", "-"]
    assert rows["lenet5"][1:4] == ["61,706", "416,520", "1x28x28"]
    notes = [line for line in out.splitlines() if line.startswith("- ")]
    assert [line.split()[1] for line in notes] == ["ext_needs_width:", "ext_plain:"]


def test_convolab_models_name_of_a_model_without_data_config_says_what_it_can(capsys):
    register_plain_and_unbuildable()
    assert main(["models", "ext_plain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["ext_plain", "170", "-", "-"]
    assert lines[-1].startswith("- ext_plain: has no data_config")
    assert main(["models", "ext_needs_width", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["params"] is None and row["macs"] is None and "width" in row["note"]


# ----- 2. aliases --------------------------------------------------------------------------------------
def test_a_single_string_alias_is_one_alias_not_one_per_character():
    @register_model(aliases="ext_mnet")
    def ext_aliased() -> nn.Module:
        return nn.Identity()

    assert _registry.get_entry("ext_aliased").aliases == ("ext_mnet",)
    assert _registry.resolve_name("ext_mnet") == "ext_aliased"
    assert "m" not in _registry._ALIASES


@pytest.mark.parametrize("taken, owner", [("lenet", "an alias of lenet5"), ("resnet20", "the name of resnet20")])
def test_an_alias_already_taken_is_refused_and_the_registry_is_unchanged(taken, owner):
    def ext_thief() -> nn.Module:
        return nn.Identity()

    with pytest.raises(RegistryError, match=f"alias '{taken}' is already {owner} .*convolab.models"):
        register_model(aliases=("ext_free", taken))(ext_thief)
    assert create_model("lenet").model_name == "lenet5"
    assert _registry.resolve_name("resnet20") == "resnet20"
    assert "ext_thief" not in convolab.list_models() and "ext_free" not in _registry._ALIASES


def test_an_alias_twice_or_the_models_own_name_as_alias_is_refused():
    def ext_twice() -> nn.Module:
        return nn.Identity()

    for aliases in (("ext_a", "ext_a"), ("ext_twice",)):
        with pytest.raises(RegistryError, match="repeats a name"):
            register_model(aliases=aliases)(ext_twice)
    with pytest.raises(RegistryError, match="aliases must be a name or a tuple of names"):
        register_model(aliases=("ext_b", 3))


# ----- 3. train_defaults -------------------------------------------------------------------------------
def test_train_defaults_keys_training_does_not_read_are_refused_naming_the_keys_it_takes():
    with pytest.raises(RegistryError, match=r"'batch_size', 'lrr', 'optimizer', 'weight_decay', which training "
                                            r"does not read; the keys it takes are lr, aux_weight"):
        register_model(train_defaults={"weight_decay": 0.0, "batch_size": 16, "optimizer": "sgd", "lrr": 5})
    assert _registry.TRAIN_DEFAULT_KEYS == ("lr", "aux_weight")
    with pytest.raises(RegistryError, match="train_defaults lr must be a number > 0, got 0"):
        register_model(train_defaults={"lr": 0})
    with pytest.raises(RegistryError, match="train_defaults aux_weight must be a number >= 0, got '0.3'"):
        register_model(train_defaults={"aux_weight": "0.3"})


def test_train_defaults_lr_and_aux_weight_are_kept():
    @register_model(train_defaults={"lr": 0.003, "aux_weight": 0.0})
    def ext_tuned() -> nn.Module:
        return nn.Identity()

    assert _registry.train_defaults("ext_tuned") == {"lr": 0.003, "aux_weight": 0.0}

    import numpy as np

    @register_model(train_defaults={"lr": np.float32(0.1)})  # a number of numpy's, as TrainConfig takes them
    def ext_tuned_numpy() -> nn.Module:
        return nn.Identity()

    assert float(_registry.train_defaults("ext_tuned_numpy")["lr"]) == pytest.approx(0.1)


# ----- 4. registering a name twice ---------------------------------------------------------------------
def test_a_name_registered_twice_is_a_convolab_error_naming_where_it_was_first_registered():
    def resnet20() -> nn.Module:
        raise AssertionError("never built")

    with pytest.raises(RegistryError, match=r"'resnet20' \(in [\w.]*test_extending\) registered twice: "
                                            r"convolab\.models\.resnet registered it first; give your function "
                                            r"another name") as caught:
        register_model(resnet20)
    assert isinstance(caught.value, convolab.ConvolabError) and isinstance(caught.value, ConfigError)
    assert _registry.get_entry("resnet20").fn is not resnet20

    def lenet() -> nn.Module:  # the alias of another model, as a name
        raise AssertionError("never built")

    with pytest.raises(RegistryError, match="its name 'lenet' is already an alias of lenet5"):
        register_model(lenet)


def test_reloading_the_module_that_registers_a_model_replaces_it(tmp_path, monkeypatch):
    source = tmp_path / "ext_notebook_models.py"
    model = """
        from torch import nn
        from convolab import register_model

        @register_model(aliases=({alias!r},))
        def ext_reloaded():
            return nn.Linear(2, {width})
    """
    source.write_text(textwrap.dedent(model.format(alias="ext_old_alias", width=3)))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("ext_notebook_models")
    try:
        assert create_model("ext_old_alias").out_features == 3
        source.write_text(textwrap.dedent(model.format(alias="ext_new_alias", width=5)))
        importlib.invalidate_caches()
        importlib.reload(module)
        assert create_model("ext_reloaded").out_features == 5
        assert _registry.resolve_name("ext_new_alias") == "ext_reloaded"
        assert "ext_old_alias" not in _registry._ALIASES
    finally:
        sys.modules.pop("ext_notebook_models", None)


# ----- 5 and 6. blocks refuse widths below 1 where they are built ----------------------------------------
@pytest.mark.parametrize("num_blocks", [0, -1])
def test_make_stage_refuses_fewer_than_one_block(num_blocks):
    with pytest.raises(ValueError, match=f"make_stage: num_blocks must be >= 1, got {num_blocks}"):
        make_stage(BasicBlock, 16, 16, num_blocks, 1)
    assert len(make_stage(BasicBlock, 16, 16, 2, 1)) == 2


def test_transition_refuses_a_width_that_compresses_to_no_channel():
    with pytest.raises(ValueError, match=r"Transition: in_channels 1 x compression 0.5 gives 0 output channels; "
                                         r"give in_channels >= 2 or a larger compression"):
        Transition(1)
    assert Transition(2).out_channels == 1


BAD_BLOCKS = {
    "conv-norm-act out 0": (lambda: ConvNormAct(3, 0, 3), "ConvNormAct: out_channels must be >= 1 channel, got 0"),
    "conv-norm-act in -2": (lambda: ConvNormAct(-2, 4, 3), "ConvNormAct: in_channels must be >= 1 channel, got -2"),
    "inception 0-wide branch": (lambda: InceptionV3A(8, InceptionV3ASpec(0, 4, 4, 4, 4, 4), conv_block()),
                                "InceptionV3A: spec.ch1x1 must be >= 1 channel, got 0"),
    "reduction 0-wide branch": (lambda: ReductionA(8, ReductionASpec(4, 0, 4, 4), conv_block()),
                                "ReductionA: spec.l must be >= 1 channel, got 0"),
    "tower layer 0 wide": (lambda: tower(conv_block(), 8, (4, 1), nn.MaxPool2d(2), (0, 3)),
                           "tower: layer 3's out_channels must be >= 1 channel, got 0"),
    "head -1 classes": (lambda: ClassifierHead(8, -1), r"ClassifierHead: num_classes must be >= 0 \(0: the pooled"),
    "head 0 features": (lambda: ClassifierHead(0, 10), "ClassifierHead: in_features must be >= 1 channel, got 0"),
    "basic block 0 planes": (lambda: BasicBlock(16, 0), "BasicBlock: planes must be >= 1 channel, got 0"),
    "bottleneck 0 in": (lambda: Bottleneck(0, 4), "Bottleneck: in_channels must be >= 1 channel, got 0"),
    "pre-act basic 0 planes": (lambda: PreActBasicBlock(8, 0), "PreActBasicBlock: planes must be >= 1 channel"),
    "pre-act bottleneck 0 planes": (lambda: PreActBottleneck(8, 0), "PreActBottleneck: planes must be >= 1 channel"),
    "dense layer 0 growth": (lambda: DenseLayer(8, 0), "DenseLayer: growth_rate must be >= 1 channel, got 0"),
    "dense layer 0 bn_size": (lambda: DenseLayer(8, 4, bn_size=0), "DenseLayer: bn_size must be >= 1"),
    "dense block 0 layers": (lambda: DenseBlock(0, 8, 4), "DenseBlock: num_layers must be >= 1, got 0"),
    "mlpconv 0 width": (lambda: MlpConv(3, [8, 0, 4], 3), r"MlpConv: channels\[1\] must be >= 1 channel, got 0"),
}


@pytest.mark.parametrize("case", BAD_BLOCKS)
def test_a_block_with_fewer_than_one_channel_is_refused_where_it_is_built(case):
    build, message = BAD_BLOCKS[case]
    with pytest.raises(ValueError, match=message):
        build()


def test_a_head_of_zero_classes_still_gives_the_pooled_features_and_reset_refuses_a_negative_count():
    head = ClassifierHead(8, 0)
    assert head(torch.randn(2, 8, 3, 3)).shape == (2, 8)
    with pytest.raises(ValueError, match="num_classes must be >= 0"):
        head.reset(-3)
    head.reset(4)
    assert head(torch.randn(2, 8, 3, 3)).shape == (2, 4)


def test_a_registered_model_of_a_zero_wide_block_is_refused_by_create_model_in_one_line():
    @register_model
    def ext_zero_wide(num_classes: int = 10, in_chans: int = 1, width: int = 0) -> nn.Module:
        return nn.Sequential(ConvNormAct(in_chans, width, 3), ClassifierHead(max(width, 1), num_classes))

    with pytest.raises(ConfigError, match="cannot build ext_zero_wide .*ConvNormAct: out_channels must be >= 1"):
        create_model("ext_zero_wide")


def test_conv_norm_act_takes_a_dilation_pair_as_it_takes_a_kernel_pair():
    import torch

    from convolab.layers import ConvNormAct

    block = ConvNormAct(8, 8, (3, 5), dilation=(2, 1))  # (a pair of dilations failed in same_padding)
    assert block.conv.padding == (2, 2) and block(torch.randn(1, 8, 9, 11)).shape == (1, 8, 9, 11)
    assert ConvNormAct(8, 8, 3, dilation=(2, 3)).conv.padding == (2, 3)
