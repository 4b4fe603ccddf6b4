"""Model options at the edges: a reset head follows the model's dtype, feature maps come in the order asked,
parts pickle, and bad options (img_size, NaN, fixed stems, image_inputs, pretrained=0) are one clear line."""
from __future__ import annotations

import io
import pickle

import pytest
import torch

import convolab
from convolab.cli._options import model_option
from convolab.errors import ConfigError


@pytest.mark.parametrize("name, options", [
    ("lenet5_bn", {}),
    ("nin_cifar", {}),
    ("googlenet_tv", {"aux_logits": True}),
    ("inception_v3", {"aux_logits": True}),
    ("resnet20", {"num_classes": 0}),
    ("multitask", {"in_chans": 2, "image_inputs": 2}),
])
def test_reset_classifier_builds_the_new_head_in_the_models_dtype(name, options):
    model = convolab.create_model(name, **options).double()
    model.reset_classifier(5)
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_a_double_nin_runs_after_reset_classifier():
    model = convolab.create_model("nin_cifar").double().eval()
    model.reset_classifier(4)
    assert model(torch.randn(1, 3, 32, 32, dtype=torch.float64)).shape == (1, 4)


def test_features_only_gives_the_maps_in_the_order_asked():
    # (resnet20's stage 0 is now the stem's `relu`, as in timm's ResNets: layer3 and layer1 are stages 3 and 1)
    model = convolab.create_model("resnet20", features_only=True, out_indices=(3, 1)).eval()
    maps = model(torch.randn(1, 3, 32, 32))
    assert [f.module for f in model.feature_info] == ["layer3", "layer1"]
    assert [m.shape[1] for m in maps] == [f.num_chs for f in model.feature_info] == [64, 16]


@pytest.mark.parametrize("out_indices, words", [
    ((1, 1), "name a stage twice"),
    ((1, -3), "name a stage twice"),  # (4 stages with the stem's: -3 is stage 1)
    ((True,), "list of whole numbers"),
    ((0.5,), "list of whole numbers"),
    (2, "list of whole numbers"),
])
def test_features_only_refuses_repeated_or_non_integer_indices(out_indices, words):
    with pytest.raises(ConfigError, match=words):
        convolab.create_model("resnet20", features_only=True, out_indices=out_indices)


@pytest.mark.parametrize("options", [{"features_only": True, "out_indices": (2, 0)}, {"until": "layer2"}])
def test_features_only_and_until_models_pickle(options):
    model = convolab.create_model("resnet20", **options).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.save(model, io.BytesIO())
    copy = pickle.loads(pickle.dumps(model)).eval()
    before, after = model(x), copy(x)
    for a, b in zip(before if isinstance(before, list) else [before], after if isinstance(after, list) else [after]):
        assert torch.equal(a, b)
    assert len(pickle.dumps(model)) < 2 * len(pickle.dumps(model.state_dict()))  # no second copy of the weights


def test_multitask_on_a_nin_backbone_gives_every_output():
    model = convolab.create_model("multitask", backbone="nin_cifar", in_chans=3).eval()
    x = torch.randn(2, 3, 32, 32)
    outputs = model.forward_outputs(x)
    assert outputs["main"].shape == (2, 10) and outputs["parity"].shape == (2, 2)
    assert torch.allclose(outputs["main"], model(x))


@pytest.mark.parametrize("options", [{"in_chans": 2, "image_inputs": 2}, {"vector_inputs": 3}])
def test_multi_input_multitask_without_classes_gives_its_features(options):
    model = convolab.create_model("multitask", num_classes=0, **options).eval()
    assert model(torch.randn(2, model.in_chans, 28, 28)).shape == (2, model.num_features)


@pytest.mark.parametrize("name, img_size", [
    ("resnet20", -3), ("resnet20", 0), ("resnet20", "big"), ("resnet20", 32.5), ("googlenet", 0), ("nin", -1),
    ("inception_v3", 0), ("bn_inception", 0), ("densenet40_k12", 0),
])
def test_a_bad_img_size_is_one_config_error(name, img_size):
    with pytest.raises(ConfigError, match=r"img_size .*whole number|img_size must be"):
        convolab.create_model(name, img_size=img_size)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_model_options_are_refused(value):
    with pytest.raises(ConfigError, match="drop_rate must be a finite number"):
        convolab.create_model("googlenet", drop_rate=value)


@pytest.mark.parametrize("options, words", [
    ({"image_inputs": 0}, "image_inputs must be a whole number >= 1, got 0"),
    ({"image_inputs": -1}, "image_inputs must be a whole number >= 1, got -1"),
    ({"vector_inputs": -1}, "vector_inputs must be a whole number >= 0, got -1"),
])
def test_multitask_checks_its_input_counts_first(options, words):
    with pytest.raises(ConfigError, match=words):
        convolab.create_model("multitask", **options)


@pytest.mark.parametrize("text, value", [
    (".5", 0.5), ("5.", 5.0), ("+0.5", 0.5), ("-2", -2), ("032", 32), ("1e-3", 0.001), ("true", True),
    ("False", False), ("null", None), ("yes", "yes"), ("nin_cifar", "nin_cifar"), ('{"a": 2}', {"a": 2}),
])
def test_model_option_reads_every_spelling_of_a_number(text, value):
    assert model_option(f"key={text}") == ("key", value)


def test_a_model_option_spelt_dot_five_reaches_the_model_as_a_number():
    _, value = model_option("drop_rate=.5")
    assert convolab.create_model("resnet20", drop_rate=value).head.drop.p == 0.5


@pytest.mark.parametrize("text", ["1", "0", "yes"])
def test_a_bool_model_option_still_refuses_numbers_and_words(text):
    _, value = model_option(f"aux_logits={text}")
    with pytest.raises(ConfigError, match="aux_logits takes true or false"):
        convolab.create_model("googlenet", aux_logits=value)


@pytest.mark.parametrize("name, options, words", [
    ("resnet20", {"stem": "imagenet"}, "resnet20 fixes stem='cifar' and stem_width=16 itself; drop stem, or build "
                                       "resnet18"),
    ("resnet20", {"stem_width": 0}, "resnet20 fixes .* drop stem_width"),
    ("plain20", {"stem": "imagenet"}, "plain20 fixes .* plain18"),
    ("densenet40_k12", {"stem": "imagenet"}, "densenet40_k12 fixes stem='cifar' itself; drop stem, or build "
                                             "densenet121"),
])
def test_options_a_cifar_entry_fixes_are_refused_by_name(name, options, words):
    with pytest.raises(ConfigError, match=words):
        convolab.create_model(name, **options)


@pytest.mark.parametrize("pretrained", [0, "", False, None])
def test_a_falsy_pretrained_builds_without_weights(pretrained):
    model = convolab.create_model("resnet20", pretrained=pretrained)
    assert model.num_classes == 10


@pytest.mark.parametrize("name", ["googlenet_small", "inception_small"])
def test_the_small_inception_nets_take_a_dropout_before_their_classifier(name):
    """Their heads had a dropout fixed at 0: `--model-option drop_rate=0.3` was refused as an unknown option."""
    assert convolab.create_model(name).head.drop.p == 0.0  # (d2l's and Zhang et al.'s have none)
    model = convolab.create_model(name, drop_rate=0.3)
    assert model.head.drop.p == 0.3 and model.model_options == {"drop_rate": 0.3}
