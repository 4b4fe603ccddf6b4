"""The plain nets of He et al. 2015 (the degradation experiment): the ResNets with no shortcut.

CIFAR (sec. 4.2): plain20..plain110 equal resnet20..resnet110 in parameters and MACs, since option-A
shortcuts have neither. ImageNet (Table 1): plain18/34 lack resnet18/34's three 1x1 projections + BN.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convolab import create_model, list_models
from convolab.analysis import count_macs, count_params
from convolab.cli import main
from convolab.errors import ConfigError
from convolab.layers import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck

CIFAR = {"plain20": "resnet20", "plain32": "resnet32", "plain44": "resnet44", "plain56": "resnet56",
         "plain110": "resnet110"}
IMAGENET = {"plain18": "resnet18", "plain34": "resnet34"}
# resnet18/34's option-B projections: 1x1 conv + BN (weight, bias) at 64->128, 128->256, 256->512.
PROJECTION_PARAMS = 64 * 128 + 128 * 2 + 128 * 256 + 256 * 2 + 256 * 512 + 512 * 2
PROJECTION_MACS = 28 * 28 * 64 * 128 + 14 * 14 * 128 * 256 + 7 * 7 * 256 * 512  # at 224 px
PARAMS = {"plain20": 269_722, "plain32": 464_154, "plain44": 658_586, "plain56": 853_018, "plain110": 1_727_962,
          "plain18": 11_515_688, "plain34": 21_623_848}


def meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **options)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck))]


@pytest.mark.parametrize("name", [*CIFAR, *IMAGENET])
def test_plain_net_has_its_exact_parameter_count(name):
    assert count_params(meta(name)) == PARAMS[name]


@pytest.mark.parametrize("plain, resnet", CIFAR.items())
def test_cifar_plain_net_equals_its_resnet_in_parameters_and_macs(plain, resnet):
    plain_model, resnet_model = meta(plain), meta(resnet)
    assert count_params(plain_model) == count_params(resnet_model)
    assert count_macs(plain_model, (3, 32, 32)) == count_macs(resnet_model, (3, 32, 32))


@pytest.mark.parametrize("plain, resnet", IMAGENET.items())
def test_imagenet_plain_net_is_its_resnet_less_the_three_projections(plain, resnet):
    plain_model, resnet_model = meta(plain), meta(resnet)
    assert PROJECTION_PARAMS == 173_824
    assert count_params(resnet_model) - count_params(plain_model) == PROJECTION_PARAMS
    assert count_macs(resnet_model, (3, 224, 224)) - count_macs(plain_model, (3, 224, 224)) == PROJECTION_MACS
    assert all(block.downsample is None for block in blocks_of(plain_model))
    assert not any(name.endswith("downsample") for name, _ in plain_model.named_modules())


def test_resnet18_reference_count_is_unchanged():
    assert count_params(meta("resnet18")) == 11_689_512


@pytest.mark.parametrize("name, side", [*((n, 32) for n in CIFAR), *((n, 64) for n in IMAGENET)])
def test_plain_net_forward_gives_logits_per_image(name, side):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, model.num_classes) and torch.isfinite(logits).all()


def _block_outputs_with_second_bn_zeroed(name: str) -> list[torch.Tensor]:
    """Each block's output once bn2 outputs zero: a plain block then gives relu(0) = 0 everywhere."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    outputs: list[torch.Tensor] = []
    for block in blocks_of(model):
        nn.init.zeros_(block.bn2.weight)
        nn.init.zeros_(block.bn2.bias)
        block.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().clone()))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    return outputs


def test_no_plain_block_adds_its_input():
    outputs = _block_outputs_with_second_bn_zeroed("plain20")
    assert len(outputs) == 9
    assert all(not out.any() for out in outputs)


def test_every_resnet20_block_adds_its_input():
    outputs = _block_outputs_with_second_bn_zeroed("resnet20")
    assert len(outputs) == 9
    assert all(out.any() for out in outputs)


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck])
def test_shortcut_none_block_has_no_downsample_and_the_same_output_shape(block):
    plain, residual = block(16, 8, stride=2, shortcut="none"), block(16, 8, stride=2, shortcut="B")
    assert plain.downsample is None and not plain.residual and residual.residual
    x = torch.randn(2, 16, 8, 8)
    assert plain(x).shape == residual(x).shape


def test_resnet_accepts_shortcut_none_and_plain_net_refuses_another_shortcut():
    assert count_params(meta("resnet20", shortcut="none")) == PARAMS["plain20"]
    assert count_params(meta("resnet18", shortcut="none")) == PARAMS["plain18"]
    assert count_params(meta("plain20", shortcut="none")) == PARAMS["plain20"]
    with pytest.raises(ConfigError, match="plain20 has no shortcut.*resnet20"):
        meta("plain20", shortcut="A")
    with pytest.raises(ConfigError, match="shortcut must be"):
        meta("resnet20", shortcut="C")


def test_convolab_models_lists_the_plain_nets(capsys):
    assert main(["models", "plain*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {*CIFAR, *IMAGENET}
    for name, params in PARAMS.items():
        assert rows[name][1] == f"{params:,}"
    assert lines[-1].startswith("7 models")


def test_the_registry_lists_the_plain_nets_beside_the_resnets():
    # (`convolab models` prints from this list; the pattern test above runs the command itself: without a
    # pattern it counts all 50 models, 9 s)
    names = set(list_models())
    assert {*CIFAR, *IMAGENET} <= names and "resnet20" in names
