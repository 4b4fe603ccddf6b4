"""torchvision ResNet / DenseNet weights load into ours and give the same outputs (random weights,
random BN statistics, eval mode)."""
from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision
from conftest import randomized
from torch import nn

import convolab
from convolab import list_models
from convolab._registry import get_entry
from convolab.analysis import count_params
from convolab.interop import UnsupportedArchitectureError, from_timm, from_torchvision

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


@pytest.mark.parametrize("name, num_classes", [("resnet18", 1000), ("resnet50", 10), ("densenet121", 7)])
def test_torchvision_weights_give_the_same_outputs(name, num_classes):
    peer = randomized(getattr(torchvision.models, name)(weights=None, num_classes=num_classes))
    ours = from_torchvision(peer)
    assert ours.model_name == name and not ours.training
    assert ours.num_classes == num_classes
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = peer(x), ours(x)
    assert got.shape == expected.shape == (2, num_classes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_converted_model_keeps_in_chans_and_train_mode():
    peer = torchvision.models.resnet18(weights=None, num_classes=3)
    peer.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    ours = from_torchvision(peer.train())
    assert ours.in_chans == 1 and ours.training
    assert torch.equal(ours.conv1.weight, peer.conv1.weight)
    assert torch.equal(ours.get_classifier().weight, peer.fc.weight)


@pytest.mark.parametrize("build, named", [
    (lambda: torchvision.models.resnext50_32x4d(weights=None), "ResNeXt"),
    (lambda: torchvision.models.wide_resnet50_2(weights=None), "Wide ResNet"),
])
def test_grouped_or_wide_resnets_are_refused_by_name(build, named):
    with torch.device("meta"):
        peer = build()
    with pytest.raises(UnsupportedArchitectureError, match=named):
        from_torchvision(peer)


def test_replaced_classifier_is_refused():
    with torch.device("meta"):
        peer = torchvision.models.resnet18(weights=None)
    peer.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 10))
    with pytest.raises(UnsupportedArchitectureError, match="nn.Linear"):
        from_torchvision(peer)


def test_unknown_torchvision_class_is_refused_with_the_list_of_convertible_ones():
    with torch.device("meta"):
        peer = torchvision.models.vgg11(weights=None)
    with pytest.raises(UnsupportedArchitectureError, match="'VGG'.*ResNet"):
        from_torchvision(peer)


TV = "torchvision's .*: convert it with `from_torchvision`"


@pytest.mark.parametrize("build, convert, named", [
    (lambda: torchvision.models.densenet121(weights=None), "timm", TV),
    (lambda: torchvision.models.resnet50(weights=None), "timm", TV),
    (lambda: timm.create_model("resnet18"), "torchvision", "timm's .*: convert it with `from_timm`"),
    (lambda: convolab.create_model("densenet121"), "torchvision", "convolab's .*needs no converting"),
])
def test_a_model_of_another_library_is_refused_naming_the_converter_it_takes(build, convert, named):
    """ResNet and DenseNet are class names in timm, torchvision and convolab: the wrong converter ran and failed
    part-way (an AttributeError, or "timm ResNet of Bottleneck blocks is not convertible")."""
    with torch.device("meta"):
        peer = build()
    with pytest.raises(UnsupportedArchitectureError, match=named):
        (from_timm if convert == "timm" else from_torchvision)(peer)


def test_every_model_marked_with_torchvision_weights_converts():
    marked = {n for n in list_models() if "torchvision" in get_entry(n).pretrained_sources}
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
            "densenet121", "densenet169", "densenet201", "densenet161"} <= marked


@pytest.mark.parametrize("name", ["resnet34", "resnet101", "resnet152",
                                  "densenet169", "densenet201", "densenet161"])
def test_other_depths_convert_strictly_to_the_registered_model(name):
    with torch.device("meta"):
        peer = getattr(torchvision.models, name)(weights=None)
    peer = peer.to_empty(device="cpu")  # storage only: the strict load is what is checked
    ours = from_torchvision(peer)
    assert ours.model_name == name
    assert count_params(ours) == count_params(peer)


@pytest.mark.parametrize("build, edit, named", [
    (lambda: torchvision.models.resnet18(weights=None, num_classes=10), lambda p: setattr(p, "maxpool", nn.Identity()),
     "`maxpool` = Identity()"),
    (lambda: torchvision.models.resnet18(weights=None, num_classes=10),
     lambda p: setattr(p, "avgpool", nn.AdaptiveMaxPool2d(1)), "`avgpool` = AdaptiveMaxPool2d"),
    (lambda: torchvision.models.resnet18(weights=None, num_classes=10),
     lambda p: setattr(p.layer2[0].conv1, "stride", (1, 1)), "`layer2.0.conv1` = Conv2d"),
    (lambda: torchvision.models.densenet121(weights=None, num_classes=10),
     lambda p: setattr(p.features, "pool0", nn.Identity()), "`features.pool0` = Identity()"),
])
def test_a_peer_with_a_parameter_free_layer_changed_is_refused_by_its_name(build, edit, named):
    """Its weights load, but its outputs would differ (a maxpool made Identity: 0.395 on resnet18)."""
    peer = build()
    edit(peer)
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(named)) as refused:
        from_torchvision(peer)
    assert "\n" not in str(refused.value)


def test_the_cifar_change_of_a_resnet_converts_to_our_cifar_stem_exactly():
    peer = torchvision.models.resnet18(weights=None, num_classes=10)
    peer.conv1, peer.maxpool = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False), nn.Identity()
    peer = randomized(peer)
    ours = from_torchvision(peer)
    assert not hasattr(ours, "maxpool") and ours.model_options == {"stem": "cifar"}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit, named", [
    (lambda p: setattr(p, "conv1", nn.Conv2d(3, 64, 3, 1, 1, bias=False)), "`conv1` = Conv2d"),  # maxpool kept
    (lambda p: setattr(p, "conv1", nn.Conv2d(3, 32, 7, 2, 3, bias=False)), "its conv1.weight is 32x3x7x7"),
    (lambda p: setattr(p, "conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=True)), "it has conv1.bias"),
])
def test_a_peer_of_other_weight_shapes_is_refused_in_one_line(edit, named):
    peer = torchvision.models.resnet18(weights=None)
    edit(peer)
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(named)) as refused:
        from_torchvision(peer)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_a_float64_peer_converts_to_a_float64_model(name):
    peer = randomized(getattr(torchvision.models, name)(weights=None, num_classes=5)).double()
    ours = from_torchvision(peer)
    assert {p.dtype for p in ours.parameters()} == {torch.float64}
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=1e-10, atol=1e-10)
