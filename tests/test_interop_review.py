"""Review of weight conversion and published weights: every converter refuses a peer whose weight-free layers
differ from ours, a replaced classifier is refused in one line or (nn.Identity) converts to a model without
one, BN momentum follows the peer, and the one-line errors of weights and checkpoints say what is true."""
from __future__ import annotations

import re
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import randomized
from torch import nn

from convolab.errors import CheckpointError, ConfigError
from convolab.interop import UnsupportedArchitectureError, from_timm, from_torchvision
from convolab.pretrained import WeightsError, choose_weights, create_model, is_weights_path
from convolab.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
README = Path(__file__).resolve().parents[1] / "README.md"


def empty(build, **kwargs) -> nn.Module:
    """The peer with storage only (what a refusal checks is its layers, not its weights)."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        peer = build(**kwargs)
    return peer.to_empty(device="cpu").eval()


def googlenet(**kwargs) -> nn.Module:
    return empty(torchvision.models.googlenet, weights=None, init_weights=False, **kwargs)


def inception3(**kwargs) -> nn.Module:
    return empty(torchvision.models.inception_v3, weights=None, init_weights=False, **kwargs)


def timm_model(name: str, **kwargs) -> nn.Module:
    timm = pytest.importorskip("timm")
    return empty(timm.create_model, model_name=name, pretrained=False, **kwargs)


def edited(peer: nn.Module, **layers: nn.Module) -> nn.Module:
    for name, layer in layers.items():
        setattr(peer, name, layer)
    return peer


@pytest.mark.parametrize("build, convert, named", [
    # torchvision GoogLeNet with a max-pooled head: 0.33 max abs difference, converted silently before
    (lambda: edited(googlenet(aux_logits=False), avgpool=nn.AdaptiveMaxPool2d(1)), from_torchvision,
     "`avgpool` = AdaptiveMaxPool2d(output_size=1), where convolab's GoogLeNet has AdaptiveAvgPool2d"),
    # torchvision Inception3 without its first max-pool: 3.8e34, top-1 changed
    (lambda: edited(inception3(aux_logits=False), maxpool1=nn.Identity()), from_torchvision,
     "`maxpool1` = Identity(), where convolab's Inception3 has MaxPool2d"),
    (lambda: timm_model("inception_v4", norm_eps=1e-5), from_timm, "`features.0.bn` = BatchNormAct2d(32, eps=1e-05"),
    (lambda: timm_model("inception_resnet_v2", act_layer="gelu"), from_timm, "`conv2d_1a.bn.act` = GELU"),
])
def test_every_converter_refuses_a_peer_whose_weight_free_layers_differ_naming_the_layer(build, convert, named):
    peer = build()
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(named)) as refused:
        convert(peer)
    assert "\n" not in str(refused.value) and "outputs would differ" in str(refused.value)


def test_a_timm_peer_with_a_layer_convolab_lacks_is_refused_by_its_name():
    peer = timm_model("inception_v4", num_classes=5)
    peer.features[0].bn.drop = nn.Dropout(0.5)  # BatchNormAct2d's `drop`: an Identity in the stock model
    with pytest.raises(UnsupportedArchitectureError, match=re.escape("`features.0.bn.drop` = Dropout(p=0.5")):
        from_timm(peer)


def test_stock_timm_peers_still_convert_with_the_same_outputs():
    timm = pytest.importorskip("timm")
    peer = randomized(timm.create_model("inception_resnet_v2", pretrained=False, num_classes=4))
    ours = from_timm(peer)
    x = torch.randn(1, 3, 75, 75, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("build", [googlenet, inception3])
def test_a_replaced_torchvision_inception_classifier_is_refused_in_one_line(build):
    peer = build(aux_logits=False)
    peer.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(peer.fc.in_features, 10))
    with pytest.raises(UnsupportedArchitectureError, match=r"with a Sequential as `fc`: .*nn\.Linear") as refused:
        from_torchvision(peer)  # was: AttributeError 'Sequential' object has no attribute 'out_features'
    assert "\n" not in str(refused.value)


def test_an_identity_classifier_converts_to_a_model_without_one_with_the_same_outputs():
    peer = randomized(torchvision.models.googlenet(weights=None, init_weights=True, aux_logits=False))
    peer.fc = nn.Identity()  # the usual way to take a torchvision model's features
    ours = from_torchvision(peer)  # was: AttributeError 'Identity' object has no attribute 'out_features'
    assert ours.num_classes == 0
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=0, atol=1e-5)
    assert ours(x).shape == (2, 1024)


@pytest.mark.parametrize("build, aux", [(googlenet, "aux1"), (inception3, "AuxLogits")])
def test_an_identity_classifier_with_aux_heads_is_refused_saying_what_to_do(build, aux):
    peer = build(aux_logits=True)
    peer.fc = nn.Identity()
    with pytest.raises(UnsupportedArchitectureError, match="aux_logits=False or keep an nn.Linear `fc`"):
        from_torchvision(peer)


@pytest.mark.parametrize("momentum", [0.01, None])
def test_batch_norm_momentum_is_the_peers_so_training_updates_the_same_statistics(momentum):
    peer = randomized(torchvision.models.resnet18(weights=None, num_classes=3,
                                                  norm_layer=partial(nn.BatchNorm2d, momentum=momentum)))
    ours = from_torchvision(peer)
    assert {m.momentum for m in ours.modules() if isinstance(m, nn.BatchNorm2d)} == {momentum}
    peer.train(), ours.train()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        peer(x), ours(x)  # one training batch: was 0.56 apart (momentum 0.01), 6.0 (None)
    theirs = {k: v for k, v in peer.state_dict().items() if "running" in k}
    mine = {k: v for k, v in ours.state_dict().items() if "running" in k}
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        torch.testing.assert_close(mine[key], value, rtol=1e-5, atol=1e-6)


def test_weights_of_the_other_library_are_said_to_be_not_loaded_not_not_published():
    with pytest.raises(WeightsError) as refused:
        choose_weights("googlenet_tv", "timm")
    assert "convolab loads googlenet_tv's weights from torchvision only" in str(refused.value)
    assert "come from" not in str(refused.value)


def test_the_readme_claims_published_weights_only_for_the_models_in_its_table():
    section = README.read_text(encoding="utf-8").split("### Published weights and safetensors", 1)[1]
    assert "Every model that torchvision or timm publishes ImageNet weights for loads them" not in section
    assert "which convolab does not convert" not in section and "| timm | a1_in1k" in section  # (timm's load now)


def test_a_whole_pickled_model_is_named_never_cut_mid_word(tmp_path):
    path = tmp_path / "full.pth"
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)  # a model, not a state dict (resnet18: the same message)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert "it holds a pickled torch.nn.modules.container.Sequential object" in message
    assert "torch.seri" not in message and "Please use" not in message and "\n" not in message


@pytest.mark.parametrize("given", ["my_weights.pth", "my_weights.ckpt", "pytorch_model.bin", "w.PT", "runs/x"])
def test_a_missing_weights_file_is_said_to_be_missing_not_an_unknown_weights_name(given, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_weights_path(given, "resnet18")
    with pytest.raises(ConfigError, match=f"file {re.escape(given)} does not exist"):
        create_model("resnet18", pretrained=given)


@pytest.mark.parametrize("given", ["IMAGENET1K_V1", "resnet18.IMAGENET1K_V1", "torchvision"])
def test_weights_names_are_still_weights_names(given):
    assert not is_weights_path(given, "resnet18")
