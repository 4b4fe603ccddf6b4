"""timm ResNet and DenseNet -> convolab: timm's `resnet18`..`resnet152` and `densenet121`..`densenet161` are
torchvision's architectures with timm's module names (the same tensor names), so converting reads the
architecture off the peer as the torchvision converters do, checks the weight-free layers under timm's names
and loads strictly. timm's variants (deep stems, average-pool shortcuts, grouped or SE blocks, drop path,
other activations or pools) are refused in one line naming what differs.
"""
from __future__ import annotations

from torch import nn

from ..layers import BasicBlock, Bottleneck
from ._converters import UnsupportedArchitectureError, converter
from ._layers import Rules, classifier_classes
from ._timm import HEAD_RULES, STAND_INS, refuse_other_pools
from .torchvision_resnet import build_densenet, build_resnet, load_checked, refuse_a_replaced_stage

# timm's ResNet applies its head dropout as a function (ours: a layer of the same rate); each block has its own
# activation after each BN (our block's one `relu`, applied after each).
_RESNET: Rules = ((r"head\.drop", None), *HEAD_RULES, (r"relu", "act1"))
_BLOCK_ACTS = {BasicBlock: (r"\1.act1", r"\1.act2"), Bottleneck: (r"\1.act1", r"\1.act2", r"\1.act3")}
# timm's DenseNet applies each ReLU inside the BN before it (BatchNormAct2d's `act`: norm0 -> relu0, ...).
_DENSENET: Rules = (*HEAD_RULES, (r"(.+)\.relu(\d?)", r"\1.norm\2.act"))


def _block_of(peer: nn.Module) -> type[nn.Module]:
    """Our block class for the peer's, once timm's variants are refused (clearer said by name than by the first
    layer that differs)."""
    from timm.models.resnet import BasicBlock as TimmBasic  # timm: only when converting from it
    from timm.models.resnet import Bottleneck as TimmBottleneck

    if not isinstance(peer.conv1, nn.Conv2d):
        raise UnsupportedArchitectureError(
            f"timm ResNet with `conv1` = {type(peer.conv1).__name__} (a deep stem of 3x3 convolutions, as "
            "resnet50d's stem_type='deep'): convolab's ResNet has one 7x7 conv1; convert timm's resnet18..152")
    first = peer.layer1[0]
    if type(first) not in (TimmBasic, TimmBottleneck):
        raise UnsupportedArchitectureError(f"timm ResNet of {type(first).__name__} blocks is not convertible: "
                                           "convolab's ResNet has timm's BasicBlock and Bottleneck only")
    if first.conv2.groups != 1:
        raise UnsupportedArchitectureError(
            f"timm ResNet with grouped 3x3 convolutions (cardinality {first.conv2.groups}: a ResNeXt, e.g. "
            "resnext50_32x4d): convolab's ResNet has plain blocks only")
    if isinstance(first, TimmBottleneck) and first.conv1.out_channels * 4 != first.conv3.out_channels:
        raise UnsupportedArchitectureError(
            f"timm ResNet with {first.conv1.out_channels}-channel bottlenecks in layer1 (a Wide ResNet, e.g. "
            "wide_resnet50_2): convolab's ResNet has bottlenecks of a quarter of the block's output channels")
    shortcut = peer.layer2[0].downsample  # (layer1's has stride 1, and a BasicBlock's layer1 none)
    if isinstance(shortcut, nn.Sequential) and not isinstance(shortcut[0], nn.Conv2d):
        raise UnsupportedArchitectureError(
            f"timm ResNet with `layer2.0.downsample.0` = {type(shortcut[0]).__name__} (an average-pool shortcut, "
            "avg_down=True, as resnet50d's): convolab's shortcut is a strided 1x1 convolution")
    return Bottleneck if isinstance(first, TimmBottleneck) else BasicBlock


@converter("timm", "ResNet")
def from_timm_resnet(peer: nn.Module) -> nn.Module:
    """timm ResNet-18/34/50/101/152 (any depth of basic or bottleneck blocks on the 7x7 stem) -> ours."""
    refuse_a_replaced_stage("ResNet", {f"layer{i}": getattr(peer, f"layer{i}") for i in range(1, 5)}, "timm")
    block = _block_of(peer)
    refuse_other_pools(peer)
    blocks = [len(getattr(peer, f"layer{i}")) for i in range(1, 5)]
    ours = build_resnet(block, blocks, num_classes=classifier_classes(peer, "fc", "timm"),
                        in_chans=peer.conv1.in_channels, drop_rate=float(peer.drop_rate))
    rules = (*_RESNET, (r"(layer\d\.\d+)\.relu", _BLOCK_ACTS[block]))
    return load_checked(ours, peer, "fc", rules, "timm", STAND_INS)


@converter("timm", "DenseNet")
def from_timm_densenet(peer: nn.Module) -> nn.Module:
    """timm DenseNet-121/169/201/161 (any block config, growth rate, bn_size on the 7x7 stem) -> ours."""
    refuse_other_pools(peer)
    ours = build_densenet(peer, "timm", head_drop_rate=float(peer.head_drop.p))
    return load_checked(ours, peer, "classifier", _DENSENET, "timm", STAND_INS)
