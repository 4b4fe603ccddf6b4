"""timm's ResNet, DenseNet and Inception-v3 (issue: timm weights): the converters give timm's outputs, timm's
variants are refused in one line, each model's sources (torchvision first, then timm) and names, and timm's
weights loaded end to end from a seeded Hugging Face cache (no network: CONVOLAB_OFFLINE=1)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import randomized
from test_pretrained import one_line_error, seed_timm  # (offline_caches: a fixture of conftest.py)
from torch import nn

import convolab
from convolab.cli import main
from convolab.interop import UnsupportedArchitectureError, from_timm
from convolab.pretrained import SOURCES, WeightsError, choose_weights, published_weights, weights_table

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

TIMM_MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
               "densenet121", "densenet169", "densenet201", "densenet161", "inception_v3")


def timm_peer(name: str, **kwargs) -> nn.Module:
    """timm's `name` with random weights, built without timm's (slow) initialization: on the meta device, then
    given storage and filled, each weight scaled by its fan-in so that the logits stay finite at any depth."""
    with torch.device("meta"):
        peer = timm.create_model(name, pretrained=False, **kwargs)
    peer = peer.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in peer.parameters():
            fan_in = math.prod(param.shape[1:]) if param.dim() > 1 else 1
            param.copy_(torch.randn(param.shape, generator=g) / math.sqrt(fan_in))
        for buffer in peer.buffers():
            buffer.zero_()
    return randomized(peer)


def assert_same_outputs(peer: nn.Module, ours: nn.Module, x: torch.Tensor) -> float:
    """Our outputs equal timm's to 1e-5 of the logits' scale; the largest difference."""
    with torch.no_grad():
        expected, got = peer(x), ours(x)
    assert got.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * scale)
    return float((got - expected).abs().max())


# ----- the converters: timm's outputs, at every depth ---------------------------------------------------------
@pytest.mark.parametrize("name, size, kwargs", [
    ("resnet18", 64, {"num_classes": 7}), ("resnet34", 64, {"in_chans": 1}), ("resnet50", 32, {}),
    ("resnet101", 32, {}), ("resnet152", 32, {}),
    ("densenet121", 32, {"num_classes": 7}), ("densenet169", 32, {"in_chans": 1}), ("densenet201", 32, {}),
    ("densenet161", 32, {}), ("inception_v3", 75, {"num_classes": 7, "in_chans": 1})])
def test_timm_models_convert_with_timms_outputs(name, size, kwargs):
    peer = timm_peer(name, **kwargs)
    ours = from_timm(peer)
    assert ours.model_name == name and not ours.training
    assert ours.num_classes == kwargs.get("num_classes", 1000)
    assert_same_outputs(peer, ours, torch.randn(2, kwargs.get("in_chans", 3), size, size))


def test_timm_inception_v3_aux_head_converts_too():
    peer = timm_peer("inception_v3", aux_logits=True, num_classes=5)
    ours = from_timm(peer)
    assert ours.aux_names == ("aux",) and ours.transform_input is False
    x = torch.randn(2, 3, 299, 299)  # (timm runs its aux head in eval mode too, whose 5x5 conv needs 299 px)
    with torch.no_grad():
        main_logits, aux_logits = peer(x)
        outputs = ours.forward_outputs(x)
    torch.testing.assert_close(outputs["main"], main_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(outputs["aux"], aux_logits, rtol=0, atol=1e-5)


def test_a_timm_model_without_classifier_converts_to_features():
    peer = timm_peer("resnet18", num_classes=0)
    ours = from_timm(peer)
    assert ours.num_classes == 0
    assert_same_outputs(peer, ours, torch.randn(2, 3, 32, 32))


def test_timms_training_settings_are_kept():
    with torch.device("meta"):
        resnet = from_timm(timm.create_model("resnet18", drop_rate=0.3))
        densenet = from_timm(timm.create_model("densenet121", drop_rate=0.2, proj_drop_rate=0.1))
    assert resnet.head.drop.p == 0.3  # (timm applies it as a function in forward_head)
    assert densenet.head.drop.p == 0.2 and densenet.model_options == {"drop_rate": 0.1, "head_drop_rate": 0.2}


# ----- timm's variants: refused in one line naming what differs -------------------------------------------
@pytest.mark.parametrize("name, kwargs, words", [
    ("resnet50d", {}, "deep stem"),
    ("resnet50", {"avg_down": True}, "average-pool shortcut"),
    ("resnext50_32x4d", {}, "cardinality 32: a ResNeXt"),
    ("wide_resnet50_2", {}, "a Wide ResNet"),
    ("seresnet50", {}, "`layer1.0.se.fc1` = Conv2d"),
    ("skresnet18", {}, "SelectiveKernelBasic blocks"),
    ("resnet50", {"drop_path_rate": 0.1}, "`layer1.1.drop_path` = DropPath"),
    ("resnet50", {"drop_block_rate": 0.1}, "DropBlock2d"),
    ("resnet50", {"global_pool": "max"}, "global_pool='max'"),
    ("resnet50", {"act_layer": "silu"}, "`act1` = SiLU"),
    ("densenet121", {"act_layer": "elu"}, "`features.norm0.act` = ELU"),
    ("densenet121", {"global_pool": "avgmax"}, "global_pool='avgmax'"),
    ("densenetblur121d", {}, "`features.conv0` = Conv2d(3, 32, kernel_size=(3, 3)"),
    ("inception_v3", {"global_pool": "max"}, "global_pool='max'"),
    ("inception_v3", {"aux_logits": True, "num_classes": 0}, "auxiliary heads"),
])
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # (torch, of a 0-class head on meta)
def test_timm_variants_are_refused_in_one_line(name, kwargs, words):
    with torch.device("meta"):  # (refused before any weight is read)
        peer = timm.create_model(name, pretrained=False, **kwargs)
        with pytest.raises(UnsupportedArchitectureError) as refused:
            from_timm(peer)
    message = str(refused.value)
    assert words in message and message.startswith("timm ") and "\n" not in message


# ----- each model's sources and weights names ---------------------------------------------------------------
def test_every_timm_model_lists_torchvision_then_timm():
    for name in TIMM_MODELS:
        assert [s.library for s in SOURCES[name]] == ["torchvision", "timm"]
        assert SOURCES[name][1].peer == name


def test_true_still_loads_torchvisions_and_timm_its_own_default():
    assert choose_weights("resnet50", True).label == "torchvision:resnet50.IMAGENET1K_V2"
    assert choose_weights("resnet18", True).label == "torchvision:resnet18.IMAGENET1K_V1"
    assert choose_weights("resnet50", "timm").label == "timm:resnet50.a1_in1k"
    for name in TIMM_MODELS:  # timm's default: what timm.create_model(name, pretrained=True) loads
        assert choose_weights(name, "timm").name == timm.models.get_pretrained_cfg(name).tag


@pytest.mark.parametrize("given", ["a1_in1k", "resnet50.a1_in1k", "timm:resnet50.a1_in1k", "timm:a1_in1k"])
def test_a_timm_weights_name_picks_it(given):
    weights = choose_weights("resnet50", given)
    assert weights.label == "timm:resnet50.a1_in1k" and weights.handle == "resnet50.a1_in1k"
    assert (weights.crop_size, weights.crop_pct, weights.interpolation) == (224, 0.95, "bicubic")
    assert weights.top1 == 81.214  # timm's results-imagenet.csv


def test_torchvision_names_keep_working():
    for given in ("IMAGENET1K_V1", "resnet50.IMAGENET1K_V1", "torchvision:resnet50.IMAGENET1K_V1", "torchvision"):
        assert choose_weights("resnet50", given).source.library == "torchvision"


def test_an_unknown_name_lists_each_sources_names_in_one_line():
    with pytest.raises(WeightsError) as refused:
        choose_weights("resnet50", "nonsense")
    message = str(refused.value)
    assert "torchvision publishes IMAGENET1K_V2, IMAGENET1K_V1" in message and "timm publishes a1_in1k" in message
    assert "\n" not in message
    with pytest.raises(WeightsError, match="; timm publishes a1_in1k") as refused:
        choose_weights("resnet50", "timm:IMAGENET1K_V1")  # looked up in timm's only
    assert "torchvision publishes" not in str(refused.value)


def test_every_imagenet_tag_is_listed_with_its_own_preprocessing():
    for name in TIMM_MODELS:
        listed = {w.handle: w for w in published_weights(SOURCES[name][1])}
        expected = [t for t in timm.list_pretrained(f"{name}.*")
                    if timm.models.get_pretrained_cfg(t).num_classes == 1000]
        assert sorted(listed) == sorted(expected)
        for tag, weights in listed.items():
            cfg = timm.models.get_pretrained_cfg(tag)
            assert (weights.crop_size, weights.crop_pct, weights.interpolation, weights.mean, weights.std) == \
                (cfg.input_size[-1], cfg.crop_pct, cfg.interpolation, tuple(cfg.mean), tuple(cfg.std))
    assert "resnet50.bamboo" not in {w.handle for w in published_weights(SOURCES["resnet50"][1])}  # no classes


def test_weights_table_has_both_sources_and_one_default():
    rows = weights_table("resnet50")
    assert {r["source"] for r in rows} == {"torchvision", "timm"}
    assert [r["weights"] for r in rows if r["default"]] == ["IMAGENET1K_V2"]
    a1 = next(r for r in rows if r["weights"] == "a1_in1k")
    assert a1["source"] == "timm" and a1["top1"] == 81.214 and a1["crop_pct"] == 0.95
    assert next(r for r in rows if r["weights"] == "a3_in1k")["input_size"] == [3, 160, 160]


# ----- end to end: timm's weights from a seeded cache ------------------------------------------------------
def test_timm_weights_load_from_the_cache_with_their_metadata(offline_caches):  # noqa: F811
    peer, _ = seed_timm(offline_caches, "resnet18.a1_in1k")
    for given in ("a1_in1k", "timm"):
        ours = convolab.create_model("resnet18", pretrained=given).eval()  # (train mode, as timm's)
        assert_same_outputs(peer.eval(), ours, torch.randn(2, 3, 32, 32))
        cfg = ours.pretrained_cfg
        assert cfg["weights"] == "timm:resnet18.a1_in1k"
        assert (cfg["crop_pct"], cfg["interpolation"], cfg["image_size"]) == (0.95, "bicubic", [224, 224])
        assert cfg["classes"][:2] == ["tench", "goldfish"] and len(cfg["classes"]) == 1000
    with pytest.raises(WeightsError, match="timm:resnet18.a2_in1k weights are neither cached nor downloadable"):
        convolab.create_model("resnet18", pretrained="a2_in1k")


def test_timm_inception_v3_weights_load_without_the_input_transform(offline_caches):  # noqa: F811
    peer, _ = seed_timm(offline_caches, "inception_v3.tv_in1k")
    ours = convolab.create_model("inception_v3", pretrained="timm").eval()
    assert ours.transform_input is False and ours.pretrained_cfg["mean"] == [0.5, 0.5, 0.5]
    assert_same_outputs(peer.eval(), ours, torch.randn(2, 3, 75, 75))


# ----- the CLI ----------------------------------------------------------------------------------------------
def test_models_pretrained_lists_timms_rows(capsys):
    assert main(["models", "resnet50", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["resnet50", "timm", "a1_in1k"] and "81.21" in line for line in lines)
    assert sum(" * " in f"{line} " for line in lines[1:-1]) == 1


def test_summary_takes_a_timm_weights_name_without_downloading(capsys):
    assert main(["summary", "resnet50", "--weights", "a3_in1k", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == [3, 160, 160]
    assert main(["summary", "resnet18", "--weights", "nonsense"]) == 2
    assert "timm publishes a1_in1k" in one_line_error(capsys)


def test_summary_of_timms_inception_v3_builds_it_as_timms_weights_do(capsys):
    assert main(["summary", "inception_v3", "--weights", "tf_in1k", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 23_834_568


def test_every_models_declared_sources_are_those_it_loads_from():
    from convolab import list_models
    from convolab.models import get_entry
    from convolab.pretrained import SOURCES

    for name in list_models():
        assert tuple(get_entry(name).pretrained_sources) == tuple(s.library for s in SOURCES.get(name, ())), name
