"""Every registered model keeps the shared API: generated from `list_models()`, so a model is
tested the moment it registers.

Shape-only checks run on the meta device (milliseconds even for the big nets); the one real
forward/backward per model runs at the smallest input the model accepts, from a fixed ladder.
"""
from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

import convolab
from convolab import create_model, list_models, register_model
from convolab._registry import get_entry, natural_key, resolve_name
from convolab.cli import main
from convolab.errors import ConfigError, RegistryError, UnknownModelError
from convolab.models import ConvNet

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

MODELS = list_models()
# Deselected by default from the per-model checks below (`pytest -m slow` runs them): each repeats the blocks of a
# shallower model the default run checks, at 5-8 s a check on 2 cores (build and pass on the meta device).
DEEPEST = {
    "resnet1202": "resnet20's basic blocks, 200 a stage instead of 3 (resnet110's 18 are checked by default)",
    "preact_resnet1001": "preact_resnet164's bottlenecks, 111 a stage instead of 18",
    # the deeper siblings of a model checked by default, of the same blocks: ~5-13 s of checks each (2026-11-30)
    **{name: f"{sibling}'s blocks, more of them" for name, sibling in (
        ("resnet101", "resnet50"), ("resnet152", "resnet50"), ("resnet101_v1", "resnet50_v1"),
        ("resnet152_v1", "resnet50_v1"), ("densenet161", "densenet121"), ("densenet169", "densenet121"),
        ("densenet201", "densenet121"), ("densenet100_k24", "densenet100_k12"),
        ("densenet_bc190_k40", "densenet_bc100_k12"), ("densenet_bc250_k24", "densenet_bc100_k12"),
        ("inception_resnet_v2", "inception_resnet_v1 and inception_v3"))},
}
EACH_MODEL = [pytest.param(n, marks=pytest.mark.slow, id=n) if n in DEEPEST else n for n in MODELS]
SIDES = (16, 32, 48, 64, 96, 128, 160, 224, 299)


def _meta_model(name: str, **kwargs) -> ConvNet:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return model.forward_outputs(x) if isinstance(model, ConvNet) else {"main": model(x)}


def _classes(model: nn.Module, output: str) -> int:
    """Classes of one output: the model's, except task heads that declare their own (`task_classes`)."""
    return getattr(model, "task_classes", {}).get(output, model.num_classes)


@cache
def _input_side(name: str) -> int:
    """The smallest side on the ladder at which the model runs, else its default side."""
    model = _meta_model(name).eval()
    channels, default, _ = model.data_config.input_size
    # Not below a seventh of the default: deep ImageNet nets at 16 x 16 have 1 x 1 maps from their
    # third stage on, where train-mode BN over two samples divides by a near-zero variance.
    for side in [s for s in SIDES if default // 7 <= s < default] + [default]:
        try:
            with torch.no_grad():
                model(torch.empty(2, channels, side, side, device="meta"))
        except RuntimeError:
            continue
        return side
    raise AssertionError(f"{name} does not run at its own data_config size {default}")


def test_registry_lists_the_model_families():
    assert MODELS == sorted(MODELS, key=natural_key)  # (timm's order: resnet18, resnet20, ..., resnet101)
    assert MODELS.index("resnet18") < MODELS.index("resnet101") and MODELS.index("densenet40_k12") < \
        MODELS.index("densenet100_k12")
    for name in ("lenet5", "nin", "resnet18", "resnet50", "resnet20", "densenet121", "densenet_bc100_k12",
                 "inception_mnist", "resnet_mnist", "preact_resnet164"):
        assert name in MODELS


def test_list_models_filters_by_shell_pattern():
    resnets = list_models("resnet*")
    assert "resnet18" in resnets and "resnet110" in resnets and "resnet50_v1" in resnets
    assert all(n.startswith("resnet") for n in resnets)
    assert "preact_resnet18" not in resnets and "densenet121" not in resnets
    assert list_models("densenet[12]??") == ["densenet121", "densenet161", "densenet169", "densenet201"]
    # timm's list_models: "" lists all, exclude_filters, natural order; pretrained may name a source
    assert list_models("") == list_models() and list_models([]) == list_models()
    assert list_models("resnet1*", exclude_filters=["*_v1", "resnet1?"]) == ["resnet101", "resnet110", "resnet152",
                                                                            "resnet1202"]
    assert "googlenet_tv" in list_models(pretrained=True) and "googlenet_tv" not in list_models(pretrained="timm")
    assert "inception_v4" not in list_models(pretrained="torchvision")
    with pytest.raises(RegistryError, match="pretrained is True, False or a source .*got 'hf'"):
        list_models(pretrained="hf")
    assert list_models("no_such_model*") == []


def test_aliases_resolve_to_their_model_and_are_listed_only_on_request():
    assert "lenet" not in list_models() and "lenet" in list_models(include_aliases=True)
    assert create_model("lenet").model_name == "lenet5"
    for alias in set(list_models(include_aliases=True)) - set(MODELS):
        assert resolve_name(alias) in MODELS


def test_unknown_name_is_refused_with_close_suggestions():
    with pytest.raises(UnknownModelError, match=r"did you mean .*resnet18"):
        create_model("resnet19")
    with pytest.raises(UnknownModelError, match="unknown model 'qqqqqq'"):
        create_model("qqqqqq")
    assert isinstance(UnknownModelError("x"), convolab.ConvolabError)


def test_registering_a_taken_name_is_refused():
    def resnet18():  # same name as the registered model
        raise AssertionError("never built")

    with pytest.raises(RuntimeError, match="registered twice"):
        register_model(resnet18)
    assert get_entry("resnet18").fn is not resnet18


@pytest.mark.parametrize("name", EACH_MODEL)
def test_model_forwards_without_nan_and_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    assert model.model_name == name and get_entry(name).family == type(model).__module__.rsplit(".", 1)[-1]
    side = _input_side(name)
    x = torch.randn(2, model.in_chans, side, side)
    outputs = _outputs(model, x)
    assert set(outputs) == {"main", *model.aux_names}
    for key, out in outputs.items():
        assert out.shape == (2, _classes(model, key)), key
        assert torch.isfinite(out).all(), key
    sum(out.sum() for out in outputs.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters the loss never reached: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", EACH_MODEL)
def test_reset_classifier_changes_the_output_classes_and_get_classifier_is_the_last_layer(name):
    model = _meta_model(name).eval()
    side = _input_side(name)
    x = torch.empty(2, model.in_chans, side, side, device="meta")
    with torch.device("meta"):
        model.reset_classifier(5)
    assert model.num_classes == 5
    executed: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: executed.append(m))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    assert out.shape == (2, 5)
    classifier = model.get_classifier()
    inside = list(classifier.modules())
    assert executed[-1] in inside, "the last layer run is not part of get_classifier()"
    last = executed[-1]
    if isinstance(last, nn.Linear):  # a linear classifier is returned itself; NiN's is a conv stack
        assert classifier is last and last.out_features == 5
    else:
        assert last.out_channels == 5
    assert {k: tuple(o.shape) for k, o in _outputs(model, x).items()} == {
        k: (2, _classes(model, k)) for k in ("main", *model.aux_names)}


@pytest.mark.parametrize("name", EACH_MODEL)
def test_reset_classifier_to_zero_gives_pooled_features_of_num_features(name):
    model = _meta_model(name).eval()
    side = _input_side(name)
    x = torch.empty(2, model.in_chans, side, side, device="meta")
    with torch.no_grad():
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
        with torch.device("meta"):
            model.reset_classifier(0)
        features = model(x)
    assert pre_logits.shape == (2, model.num_features)
    assert features.shape == (2, model.num_features)


@pytest.mark.parametrize("name", EACH_MODEL)
def test_feature_info_names_real_modules_whose_outputs_have_the_stated_channels(name):
    model = _meta_model(name).eval()
    side = _input_side(name)
    modules = dict(model.named_modules())
    assert model.feature_info, "feature_info is empty"
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for info in model.feature_info:
        assert info.module in modules, f"feature_info names {info.module!r}, not a module of {name}"
        hooks.append(modules[info.module].register_forward_hook(
            lambda m, i, o, key=info.module: seen.update({key: o})))
    with torch.no_grad():
        features = model.forward_features(torch.empty(1, model.in_chans, side, side, device="meta"))
    for h in hooks:
        h.remove()
    for info in model.feature_info:
        assert seen[info.module].shape[1] == info.num_chs, info
    assert features.shape[1] == model.feature_info[-1].num_chs
    reductions = [info.reduction for info in model.feature_info]
    assert reductions == sorted(reductions) and reductions[0] >= 1
    sizes = [seen[info.module].shape[-1] for info in model.feature_info]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("name", EACH_MODEL)
def test_in_chans_and_num_classes_are_taken_at_construction_and_data_config_follows(name):
    default = _meta_model(name)
    config = default.data_config
    assert config.input_size[0] == default.in_chans == len(config.mean) == len(config.std)
    assert config.input_size[1] == config.input_size[2] > 0
    assert all(s > 0 for s in config.std)
    other = 3 if default.in_chans == 1 else 1
    model = _meta_model(name, in_chans=other, num_classes=7).eval()
    assert model.in_chans == other and model.num_classes == 7
    assert model.data_config.input_size == (other, *config.input_size[1:])
    assert len(model.data_config.mean) == len(model.data_config.std) == other
    side = _input_side(name)
    with torch.no_grad():
        out = model(torch.empty(2, other, side, side, device="meta"))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("options,words", [
    ({"num_classes": -1}, r"num_classes must be a whole number >= 0 \(0 drops the classifier.*got -1"),
    ({"num_classes": 2.5}, "num_classes must be a whole number >= 0.*got 2.5"),
    ({"num_classes": True}, "num_classes must be a whole number >= 0.*got True"),
    ({"in_chans": 0}, r"in_chans must be a whole number >= 1 \(the input's channels.*got 0"),
    ({"in_chans": -1}, "in_chans must be a whole number >= 1.*got -1"),
])
@pytest.mark.parametrize("name", ["resnet20", "lenet5", "googlenet_tv", "multitask"])
def test_create_model_refuses_classes_below_0_and_channels_below_1_in_one_line(name, options, words):
    with pytest.raises(ConfigError, match=words) as caught:
        _meta_model(name, **options)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_create_model_takes_0_classes_for_features_and_numpy_whole_numbers():
    model = _meta_model("resnet20", num_classes=0, in_chans=np.int64(1))
    assert model.num_classes == 0 and type(model.in_chans) is int and model.in_chans == 1
    assert model(torch.empty(2, 1, 32, 32, device="meta")).shape == (2, model.num_features)


@pytest.mark.parametrize("name", EACH_MODEL)
def test_reset_classifier_refuses_a_negative_or_fractional_class_count(name):
    model = _meta_model(name)
    for bad in (-5, 1.5):
        with pytest.raises(ConfigError, match=f"num_classes must be a whole number >= 0.*got {bad}"):
            model.reset_classifier(bad)
    assert model.num_classes == _meta_model(name).num_classes  # unchanged


def test_list_models_matches_in_any_case_and_the_verb_names_close_models(capsys):
    assert list_models("ResNet5?") == ["resnet50", "resnet56"] == list_models("resnet5?")
    assert main(["models", "resnt50"]) == 2
    out, err = capsys.readouterr()
    assert not out and err.splitlines() == [
        "convolab models: error: no model matches 'resnt50'; did you mean resnet50, resnet56, resnet20? "
        "(`convolab models` lists them all)"]
    assert main(["models", "ResNet*", "--json"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == list_models("resnet*")
    assert main(["models", "lenet"]) == 0  # an alias shows its model's row (then the count, then its options)
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:-2]] == ["lenet5"]
