"""feature_info, features_only and out_indices as timm's for the ResNets and DenseNets timm has.

Before: our stages began at layer1 / denseblock1 (timm's at the stem: resnet's act1, densenet's norm0, stride 2),
so the same out_indices picked other stages, silently; DenseNet's last stage was denseblock4, before the final
BN-ReLU (timm's norm5 is after it, as forward_features is); FeatureInfo took no `info["num_chs"]` and a
features_only model's feature_info had no `channels()`. Each test here fails on that code.
"""
from __future__ import annotations

import pytest
import timm
import torch

import convolab
from convolab.errors import ConfigError
from convolab.models._features import features_only, layer_names, truncate

TIMM_NAMES = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
              "densenet121", "densenet161", "densenet169", "densenet201"]


def _meta(name: str, **options) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(convolab's, timm's) on the meta device: the shapes of every stage, no weights drawn."""
    with torch.device("meta"):
        return (convolab.create_model(name, **options),
                timm.create_model(name, pretrained=False, **options))


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_feature_info_has_timms_stages(name):
    ours, theirs = _meta(name)
    assert [(f.num_chs, f.reduction) for f in ours.feature_info] == \
        [(f["num_chs"], f["reduction"]) for f in theirs.feature_info]
    assert [f["num_chs"] for f in ours.feature_info] == [f.num_chs for f in ours.feature_info]  # timm's access


@pytest.mark.parametrize("name", TIMM_NAMES)
@pytest.mark.parametrize("out_indices", [(0, 4), pytest.param((2, 3), marks=pytest.mark.slow),
                                         pytest.param((1, 2), marks=pytest.mark.slow)])
# (ascending: timm's maps come in stage order; (0, 4) takes every end, the others run with `pytest -m slow`)
def test_out_indices_pick_the_maps_timm_picks(name, out_indices):
    ours, theirs = _meta(name, features_only=True, out_indices=out_indices)
    x = torch.empty(1, 3, 96, 96, device="meta")
    assert [m.shape for m in ours(x)] == [m.shape for m in theirs(x)]
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()


@pytest.mark.parametrize("name", ["densenet121", "densenet40_k12"])
def test_densenets_last_stage_is_forward_features_after_the_final_bn_relu(name):
    torch.manual_seed(0)
    model = convolab.create_model(name).eval()
    side = min(64, model.data_config.input_size[-1])
    x = torch.randn(2, 3, side, side)
    maps = features_only(model, (0, -1)).eval()(x)  # the same weights
    with torch.no_grad():
        assert torch.equal(maps[-1].detach(), model.forward_features(x))
    assert bool((maps[-1] >= 0).all())  # after the final ReLU
    assert model.feature_info[-1].module == "features.relu5"


@pytest.mark.parametrize("name, stem, reduction", [
    ("resnet18", "relu", 2), ("resnet20", "relu", 1), ("plain20", "relu", 1),
    ("preact_resnet18", "conv1", 2), ("preact_resnet164", "conv1", 1),
    ("densenet121", "features.relu0", 2), ("densenet40_k12", "features.conv0", 1),
])
def test_every_resnet_and_densenet_begins_with_its_stem_stage(name, stem, reduction):
    with torch.device("meta"):
        model = convolab.create_model(name)
    first = model.feature_info[0]
    stem_conv = model.features.conv0 if name.startswith("densenet") else model.conv1
    assert (first.module, first.num_chs, first.reduction) == (stem, stem_conv.out_channels, reduction)
    assert isinstance(model.feature_info, list)


def test_feature_info_entries_read_as_timms_dicts():
    info = convolab.create_model("resnet18").feature_info[0]
    assert (info["num_chs"], info["reduction"], info["module"]) == (64, 2, "relu")
    assert info.get("num_chs") == 64 and info.get("index") is None and info.get("stage", 7) == 7
    assert dict(info) == {"num_chs": 64, "reduction": 2, "module": "relu"} and "module" in info
    with pytest.raises(KeyError):
        info["nope"]


def test_features_only_feature_info_has_timms_accessors():
    ours, theirs = _meta("resnet18", features_only=True, out_indices=(2, 3))
    mine, timms = ours.feature_info, theirs.feature_info
    assert isinstance(mine, list) and [f.module for f in mine] == ["layer2", "layer3"]
    for method in ("channels", "reduction"):
        for idx in (None, 0, [0, 4], 1):
            assert getattr(mine, method)(idx) == getattr(timms, method)(idx), (method, idx)
    assert mine.module_name() == ["layer2", "layer3"] and mine.module_name(0) == "relu"  # timm's act1
    assert mine.get_dicts() == timms.get_dicts()
    assert mine.get_dicts(keys=["num_chs", "index"], idx=[1, 2]) == timms.get_dicts(keys=["num_chs", "index"],
                                                                                     idx=[1, 2])
    assert mine.get_dicts(idx=0) == {"num_chs": 64, "reduction": 2, "module": "relu", "index": 0}
    assert mine.get("num_chs") == [128, 256]


def test_until_takes_the_stem_stages_and_still_densenets_last_block():
    models = {name: convolab.create_model(name) for name in ("densenet121", "resnet18", "preact_resnet18")}
    assert layer_names(models["densenet121"])[:2] == ["features", "features.relu0"]
    for name, until in [("densenet121", "features.relu0"), ("densenet121", "features.denseblock4"),
                        ("densenet121", "features.relu5"), ("resnet18", "relu"), ("preact_resnet18", "conv1")]:
        cut = truncate(models[name], until, num_classes=3).eval()
        assert cut(torch.randn(1, 3, 64, 64)).shape == (1, 3), (name, until)
        assert cut.feature_info[-1].module == until
    with pytest.raises(ConfigError, match="unknown layer 'nope' for densenet121; choose one of: features, "
                                          "features.relu0, .*features.relu5, features.denseblock4$"):
        truncate(models["densenet121"], "nope")
