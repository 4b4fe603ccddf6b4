"""convolab's models inside the PyTorch ecosystem's own habits (found by a tester of torch.compile, quantization
and friends): a torch.compile'd model's saved weights load through pretrained=, and a LeNet quantized by
`quantize_dynamic` takes a new classifier; and what the public API's docstrings brought to light: layers without a
norm, and the resize before a centre crop."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import convolab
from convolab.errors import ConfigError
from convolab.layers import DenseLayer, PreActBasicBlock, PreActBottleneck


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_pretrained_file_of_a_compiled_or_wrapped_models_state_dict_loads(tmp_path, prefix):
    # (what torch.save(torch.compile(m).state_dict()) writes; before: 116 missing, 116 unexpected)
    model = convolab.create_model("resnet20")
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "c.pth")
    loaded = convolab.create_model("resnet20", pretrained=tmp_path / "c.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_reset_classifier_of_a_dynamically_quantized_lenet():
    # (before: AttributeError: 'function' object has no attribute 'device', a quantized Linear's weight a method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(convolab.create_model("lenet5").eval(), {torch.nn.Linear})
        quantized.reset_classifier(3)
        assert quantized(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    model = convolab.create_model("lenet5").double()
    model.reset_classifier(4)  # (and where the layers live, as before)
    assert model.head.fc.weight.dtype == torch.float64


# ----- found while writing the public API's docstrings -------------------------------------------------------
def NO_NORM(channels: int) -> nn.Module:  # noqa: N802  (a norm_layer, named as the argument it is passed as)
    return nn.Identity()


@pytest.mark.parametrize("make", [
    lambda: PreActBasicBlock(8, 8, norm_layer=NO_NORM),
    lambda: PreActBottleneck(8, 2, norm_layer=NO_NORM),
    lambda: DenseLayer(8, 4, norm_layer=NO_NORM),
    lambda: DenseLayer(8, 4, bn_size=None, norm_layer=NO_NORM),
], ids=["preact-basic", "preact-bottleneck", "dense-bottleneck", "dense-plain"])
def test_a_pre_activation_layer_without_a_norm_leaves_its_input_as_it_was(make):
    # (before: the in-place ReLU after an nn.Identity norm wrote into the caller's tensor, and the shortcut then
    # added relu(x) instead of x)
    block = make().eval()
    x = torch.randn(2, 8, 5, 5)
    before = x.clone()
    with torch.no_grad():
        y = block(x)
    assert torch.equal(x, before)
    if hasattr(block, "conv2") and hasattr(block, "_shortcut"):  # the pre-activation blocks: x + F(relu(x))
        with torch.no_grad():
            again = block(before.clone())
        assert torch.equal(y, again)
    if type(block).__name__ == "PreActBasicBlock":
        with torch.no_grad():
            expected = block.conv2(torch.relu(block.conv1(torch.relu(before)))) + before
        assert torch.allclose(y, expected)


@pytest.mark.parametrize("crop, resize", [(176, 233), (224, 232), (299, 342), (224, 256)])
def test_the_resize_before_a_centre_crop_is_not_a_pixel_short_by_round_off(crop, resize):
    from convolab.data.decode import resize_side

    assert resize_side(crop, crop / resize) == resize  # (before: int(176 / (176 / 233)) was 232)
    assert resize_side(224, 0.875) == 256 and resize_side(224, 0.9) == 248  # timm's floor of a true fraction


@pytest.mark.parametrize("name, size", [("googlenet_tv", 224), ("inception_v3", 299)])
def test_a_model_that_takes_torchvisions_input_transform_traces_with_torch_fx(name, size, tmp_path):
    # (before: "torch.fx cannot trace": draw --pretrained, features_only and --until on the ported weights' models)
    from convolab.cli import main

    with torch.device("meta"):
        maps = convolab.create_model(name, transform_input=True, features_only=True)
    assert len(maps(torch.zeros(1, 3, size, size, device="meta"))) == len(maps.feature_info)
    assert main(["draw", name, "--model-option", "transform_input=true", "--out", str(tmp_path / "m.svg")]) == 0
    model = convolab.create_model(name, transform_input=True, features_only=True).eval()
    with pytest.raises(RuntimeError, match="transform_input takes 3-channel RGB images, got 1"):
        model(torch.zeros(1, 1, size, size))  # (its channel check still runs, as one call of the graph)


def test_features_only_and_until_models_keep_the_sources_pretrained_cfg():
    # (found by the review of this change: timm's resolver gave a features_only resnet20 3x224 ImageNet figures,
    # and a cut of published weights lost their interpolation and crop)
    from convolab.models._features import features_only, truncate

    timm_data = pytest.importorskip("timm.data")
    maps = convolab.create_model("resnet20", features_only=True)
    assert timm_data.resolve_model_data_config(maps)["input_size"] == (3, 32, 32)
    source = convolab.create_model("resnet18")
    source.pretrained_cfg = {"interpolation": "bilinear", "crop_pct": 0.875, "classes": ["a"] * 1000}
    cut = truncate(source, "layer3", num_classes=5)
    assert cut.pretrained_cfg["interpolation"] == "bilinear" and cut.pretrained_cfg["num_classes"] == 5
    assert "classes" not in cut.pretrained_cfg
    assert features_only(source, (1, 2)).pretrained_cfg["crop_pct"] == 0.875


@pytest.mark.parametrize("name", ["resnet18", "googlenet_tv", "lenet5_two_head", "multitask"])
def test_reset_classifier_takes_timms_global_pool_avg_and_refuses_another_in_one_line(name):
    """timm's `model.reset_classifier(0, "avg")` runs as timm's; its `reset_classifier(0, "")` (the unpooled map)
    is one line naming `global_pool` and the way to the map, not a TypeError of the signature."""
    model = convolab.create_model(name, **({"aux_logits": True} if name == "googlenet_tv" else {}))
    model.reset_classifier(3, "avg")
    assert model.num_classes == 3 and model.get_classifier().out_features == 3
    with pytest.raises(ConfigError, match=r"^global_pool '': convolab's heads keep their own pooling; "
                                                   r"leave `global_pool` out .*forward_features\(x\)$"):
        model.reset_classifier(0, "")
    assert model.num_classes == 3  # (refused before anything changed)
