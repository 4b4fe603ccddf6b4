"""The models' code against the papers and the authors' code (review of the model families):
DenseNet's drop_rate check, dropout placement and init in the CIFAR DenseNets (liuzhuang13/DenseNet),
the stride of the CIFAR pre-activation bottlenecks (KaimingHe/resnet-1k-layers), the pre-activation
nets' first unit (He et al. 2016, Appendix), cuts that give no feature map, and stride_in_1x1 on
basic blocks.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convolab import create_model
from convolab.analysis import count_macs
from convolab.errors import ConfigError
from convolab.layers import ClassifierHead, DenseLayer, PreActBasicBlock, PreActBottleneck, Transition
from convolab.models._base import ConvNet, FeatureInfo, data_config_for
from convolab.models._features import layer_names, truncate
from convolab.models.densenet import DenseNet, DenseNetSpec


def meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


# 1. drop_rate is a probability, refused at build time outside [0, 1]

@pytest.mark.parametrize("rate", [2.0, -0.5, 1.5])
def test_dense_layer_refuses_a_drop_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\]"):
        DenseLayer(8, 4, drop_rate=rate)
    with pytest.raises(ConfigError, match="drop_rate") as err:
        create_model("densenet40_k12", drop_rate=rate)
    assert "\n" not in str(err.value)


def test_dense_layer_takes_the_ends_of_0_1():
    assert DenseLayer(8, 4, drop_rate=0.0).drop_rate == 0.0
    assert DenseLayer(8, 4, drop_rate=1.0).drop_rate == 1.0


# 2. CIFAR DenseNets: dropout after every conv but the stem, Kaiming fan_out init (the authors' code)

def _inputs_of(model: nn.Module, names: list[str], size: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """The input each named module receives in one training-mode forward."""
    seen: dict[str, torch.Tensor] = {}
    named = dict(model.named_modules())
    hooks = [named[n].register_forward_pre_hook(lambda m, i, n=n: seen.setdefault(n, i[0].detach().clone()))
             for n in names]
    model.train()(torch.randn(2, *size))
    for h in hooks:
        h.remove()
    return seen


def test_cifar_densenet_bc_drops_after_the_bottleneck_and_the_transition_conv():
    torch.manual_seed(0)
    model = create_model("densenet_bc100_k12", drop_rate=1.0)  # everything dropped is exactly zero
    seen = _inputs_of(model, ["features.denseblock1.denselayer1.norm2", "features.transition1.pool",
                              "features.denseblock1.denselayer1.norm1"], (3, 32, 32))
    assert bool((seen["features.denseblock1.denselayer1.norm2"] == 0).all())  # after the 1x1 bottleneck
    assert bool((seen["features.transition1.pool"] == 0).all())  # after the transition conv
    assert not bool((seen["features.denseblock1.denselayer1.norm1"] == 0).all())  # the stem: no dropout


def test_cifar_densenet_transition_dropout_adds_no_parameters():
    for name in ("densenet40_k12", "densenet_bc100_k12"):
        plain, dropped = meta(name), meta(name, drop_rate=0.2)
        assert [n for n, _ in plain.state_dict().items()] == [n for n, _ in dropped.state_dict().items()]
        assert isinstance(dropped.features.transition1.drop, nn.Dropout)


def test_imagenet_densenet_keeps_torchvisions_dropout():
    torch.manual_seed(0)
    model = DenseNet(DenseNetSpec((2, 2), 8, 16), num_classes=3, drop_rate=1.0)  # stem="imagenet"
    seen = _inputs_of(model, ["features.denseblock1.denselayer1.norm2", "features.transition1.pool",
                              "features.denseblock1.denselayer2.norm1"], (3, 64, 64))
    assert not bool((seen["features.denseblock1.denselayer1.norm2"] == 0).all())  # nothing after the 1x1
    assert not bool((seen["features.transition1.pool"] == 0).all())
    assert [n for n, _ in model.features.transition1.named_children()] == ["norm", "relu", "conv", "pool"]
    # after the 3x3: the second layer sees the block input and a zeroed first layer's output
    assert bool((seen["features.denseblock1.denselayer2.norm1"][:, 16:] == 0).all())


def test_transition_refuses_a_drop_rate_outside_0_1():
    with pytest.raises(ValueError, match="drop_rate"):
        Transition(16, drop_rate=1.5)


def _std_ratio(conv: nn.Conv2d, mode: str) -> float:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    fan = k * (conv.out_channels if mode == "fan_out" else conv.in_channels)
    return conv.weight.std().item() / math.sqrt(2 / fan)


def test_cifar_densenet_convs_start_from_kaiming_fan_out():
    torch.manual_seed(0)
    model = create_model("densenet100_k12")
    conv = model.features.denseblock3.denselayer32.conv2  # 9 x 12 x 1,000+ weights: a tight estimate
    assert abs(_std_ratio(conv, "fan_out") - 1) < 0.03


def test_imagenet_densenet_convs_keep_torchvisions_fan_in():
    torch.manual_seed(0)
    model = DenseNet(DenseNetSpec((4, 4), 32, 64), num_classes=3)
    conv = model.features.denseblock2.denselayer4.conv2
    assert abs(_std_ratio(conv, "fan_in") - 1) < 0.03


# 3. CIFAR pre-activation bottleneck nets: the stride on the first 1x1 (resnet-pre-act.lua)

def test_cifar_preact_bottlenecks_stride_on_the_first_1x1():
    for name in ("preact_resnet164", "preact_resnet1001"):
        unit = meta(name).layer2[0]
        assert unit.conv1.stride == (2, 2) and unit.conv2.stride == (1, 1), name
    assert count_macs(meta("preact_resnet164"), (3, 32, 32)) == 244_500_992
    assert count_macs(meta("preact_resnet1001"), (3, 32, 32)) == 1_487_849_984
    # the other placement stays one option away
    assert count_macs(meta("preact_resnet164", stride_in_1x1=False), (3, 32, 32)) == 247_646_720


def test_imagenet_preact_resnet50_keeps_the_stride_on_the_3x3():
    unit = meta("preact_resnet50").layer2[0]
    assert unit.conv1.stride == (1, 1) and unit.conv2.stride == (2, 2)


# 4. pre-activation nets: the first unit's shortcut takes the activated stem output

def test_preact_first_unit_adds_its_activated_input():
    torch.manual_seed(0)
    block = PreActBasicBlock(16, 16, first_unit=True).eval()
    nn.init.zeros_(block.conv2.weight)  # the residual branch adds nothing
    nn.init.normal_(block.bn1.bias)
    x = torch.randn(2, 16, 6, 6)
    assert torch.equal(block(x), torch.relu(block.bn1(x)))


@pytest.mark.parametrize("name, options", [("preact_resnet18", {}), ("preact_resnet18", {"stem": "cifar"})])
def test_preact_nets_first_unit_shortcut_is_activated(name, options):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **options).eval()
    first = model.layer1[0]
    assert first.first_unit and first.downsample is None
    assert not any(b.first_unit for b in list(model.layer1)[1:])
    nn.init.zeros_(first.conv2.weight)
    seen: dict[str, torch.Tensor] = {}
    first.register_forward_pre_hook(lambda m, i: seen.setdefault("in", i[0].detach().clone()))
    first.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach().clone()))
    with torch.no_grad():
        model(torch.randn(1, *model.data_config.input_size))
    assert bool((seen["in"] < 0).any())  # the raw stem output has negatives ...
    assert torch.equal(seen["out"], torch.relu(first.bn1(seen["in"])))  # ... the shortcut adds none


def test_preact_first_unit_keeps_the_parameters():
    assert sum(p.numel() for p in meta("preact_resnet18").parameters()) == 11_687_720
    assert PreActBottleneck(16, 4, first_unit=True).first_unit


# 5. a cut must give a feature map (N x C x H x W)

def test_until_refuses_a_multitask_backbone_in_one_line():
    for name in ("lenet5_two_head", "multitask"):
        assert "backbone" not in layer_names(create_model(name))
        with pytest.raises(ConfigError, match="'backbone'.*not a feature map") as err:
            create_model(name, until="backbone")
        assert "\n" not in str(err.value)
    cut = create_model("lenet5_two_head", until="backbone.features.5", num_classes=3)
    assert cut(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


class _Squash(nn.Module):
    """Global mean pool to N x C: a vector output from a layer with no linear or flatten inside."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class _VectorEnd(ConvNet):
    def __init__(self):
        super().__init__()
        self.num_classes, self.in_chans, self.num_features = 2, 1, 4
        self.data_config = data_config_for(1, 8)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.squash = _Squash()
        self.feature_info = [FeatureInfo("conv", 4, 1)]
        self.head = ClassifierHead(4, 2, pool=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.squash(self.conv(x))


def test_truncate_refuses_a_layer_whose_output_is_not_a_feature_map():
    with pytest.raises(ConfigError, match=r"'squash'.*shape \(1, 4\).*not a feature map") as err:
        truncate(_VectorEnd(), "squash")
    assert "\n" not in str(err.value)
    assert truncate(_VectorEnd(), "conv")(torch.zeros(2, 1, 8, 8)).shape == (2, 2)


# 6. stride_in_1x1 is for bottleneck nets only

@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet20", "plain20", "plain18", "preact_resnet18"])
def test_stride_in_1x1_is_refused_on_basic_block_nets(name):
    with pytest.raises(ConfigError, match="stride_in_1x1 applies to bottleneck nets only") as err:
        create_model(name, stride_in_1x1=True)
    assert "\n" not in str(err.value)
    create_model(name, stride_in_1x1=False)  # the default, which changes nothing, is fine


def test_stride_in_1x1_still_builds_bottleneck_nets():
    assert meta("resnet50", stride_in_1x1=True).layer2[0].conv1.stride == (2, 2)
    assert meta("preact_resnet50", stride_in_1x1=True).layer2[0].conv1.stride == (2, 2)
