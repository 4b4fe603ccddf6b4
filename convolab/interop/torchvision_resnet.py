"""torchvision ResNet and DenseNet -> convolab: read the architecture off the peer model, build ours
to match, rename the classifier (`fc` / `classifier` -> `head.fc`) and load the weights strictly.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from ..layers import BasicBlock, Bottleneck
from ..models import create_model
from ..models.densenet import DenseNet, DenseNetSpec
from ..models.resnet import ResNet, imagenet_stages
from ._converters import UnsupportedArchitectureError, converter
from ._layers import Rules, classifier_classes, match_layers
from .torchvision_inception import load_converted, rename_keys

# (block expansion, blocks per stage) and (blocks, growth rate, stem width, bn_size) of the
# registered models, so that a converted model carries its registry name.
_RESNETS = {(1, (2, 2, 2, 2)): "resnet18", (1, (3, 4, 6, 3)): "resnet34", (4, (3, 4, 6, 3)): "resnet50",
            (4, (3, 4, 23, 3)): "resnet101", (4, (3, 8, 36, 3)): "resnet152"}
_DENSENETS = {((6, 12, 24, 16), 32, 64, 4): "densenet121", ((6, 12, 32, 32), 32, 64, 4): "densenet169",
              ((6, 12, 48, 32), 32, 64, 4): "densenet201", ((6, 12, 36, 24), 48, 96, 4): "densenet161"}

# Our head's layers the peers' forward has as a flatten call, and no dropout (ours: p=0).
_HEAD_ONLY: Rules = ((r"head\.flatten", None), (r"head\.drop", None))


def load_checked(ours: nn.Module, peer: nn.Module, head: str, rules: Rules, library: str = "torchvision",
                 stand_ins: Mapping[str, type[nn.Module]] | None = None) -> nn.Module:
    """`ours` with the peer's weights (the classifier `head` renamed to head.fc), on its device, in its dtype
    and train/eval mode, once its layers are checked to be the peer's."""
    match_layers(ours, peer, library, ((r"head\.fc", head), *rules), stand_ins)
    param = next(peer.parameters(), None)
    if param is not None:
        ours.to(param.device, param.dtype)
    return load_converted(ours, rename_keys(peer.state_dict(), {head: "head.fc"}), peer)


@converter("torchvision", "ResNet")
def convert_resnet(peer: nn.Module) -> nn.Module:
    """torchvision ResNet-18/34/50/101/152 (any depth of basic or bottleneck blocks) -> ours."""
    from torchvision.models.resnet import BasicBlock as TvBasic  # torchvision: only when converting from it
    from torchvision.models.resnet import Bottleneck as TvBottleneck

    groups, width = getattr(peer, "groups", 1), getattr(peer, "base_width", 64)
    if groups != 1 or width != 64:
        kind = "ResNeXt, e.g. resnext50_32x4d" if groups != 1 else "Wide ResNet, e.g. wide_resnet50_2"
        raise UnsupportedArchitectureError(
            f"torchvision ResNet with groups={groups}, width_per_group={width} ({kind}) is not convertible: "
            "convolab's ResNet has plain blocks only (groups=1, width_per_group=64)")
    if getattr(peer, "dilation", 1) != 1:
        raise UnsupportedArchitectureError(
            "torchvision ResNet with replace_stride_with_dilation: convolab's ResNet has no dilated stages")
    if type(peer.bn1) is not nn.BatchNorm2d:
        raise UnsupportedArchitectureError(
            f"torchvision ResNet with norm_layer={type(peer.bn1).__name__}: convolab converts BatchNorm2d "
            "only")
    refuse_a_replaced_stage("ResNet", {f"layer{i}": getattr(peer, f"layer{i}") for i in range(1, 5)})
    first = peer.layer1[0]
    if isinstance(first, TvBottleneck):
        block = Bottleneck
    elif isinstance(first, TvBasic):
        block = BasicBlock
    else:
        raise UnsupportedArchitectureError(
            f"torchvision ResNet of {type(first).__name__} blocks is not convertible")
    blocks = [len(getattr(peer, f"layer{i}")) for i in range(1, 5)]
    kwargs = dict(num_classes=classifier_classes(peer, "fc", "torchvision"), in_chans=peer.conv1.in_channels)
    conv1 = peer.conv1
    # The common CIFAR change (3x3 stride-1 conv1, no max-pool) is our stem="cifar"; any other is refused.
    cifar = isinstance(peer.maxpool, nn.Identity) and isinstance(conv1, nn.Conv2d) and \
        (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    if cifar:
        kwargs["stem"] = "cifar"
    ours = build_resnet(block, blocks, **kwargs)
    if cifar:
        ours.model_options = {"stem": "cifar"}  # (what a checkpoint of it rebuilds it with)
    return load_checked(ours, peer, "fc", ((r"head\.pool", "avgpool"), *_HEAD_ONLY))


def build_resnet(block: type[nn.Module], blocks: Sequence[int], **kwargs) -> nn.Module:
    """Our ImageNet ResNet of `block`s, `blocks` per stage: the registered model of that depth where there is one
    (it carries its registry name), else one built directly."""
    name = _RESNETS.get((block.expansion, tuple(blocks)))
    return create_model(name, **kwargs) if name else ResNet(block, imagenet_stages(blocks), **kwargs)


def refuse_a_replaced_stage(family: str, stages: dict[str, nn.Module], library: str = "torchvision") -> None:
    """A stage or block of blocks replaced whole (by nn.Identity, say): one line naming it, before its blocks are
    counted (the layer check pairs layers inside the stages, which such a peer lacks)."""
    for name, stage in stages.items():
        if not list(stage.children()):
            raise UnsupportedArchitectureError(
                f"{library} {family} with `{name}` = {stage!r}, where convolab's {family} has a stage of blocks: its "
                f"outputs would differ; convert the network as {library} builds it")


@converter("torchvision", "DenseNet")
def convert_densenet(peer: nn.Module) -> nn.Module:
    """torchvision DenseNet-121/169/201/161 (any block config, growth rate, bn_size) -> ours."""
    ours = build_densenet(peer, "torchvision")
    # (torchvision's DenseNet pools and applies the last ReLU as functions)
    return load_checked(ours, peer, "classifier", ((r"head\.pool", None), (r"features\.relu5", None), *_HEAD_ONLY))


def build_densenet(peer: nn.Module, library: str, **kwargs) -> nn.Module:
    """Our DenseNet of the peer's block config, growth rate, stem width and bn_size (torchvision's and timm's name
    their layers alike): the registered model where there is one, else one built directly; `kwargs` add to the
    classes, input channels and dense layers' dropout read off the peer."""
    features = peer.features
    refuse_a_replaced_stage("DenseNet", {f"features.{name}": m for name, m in features.named_children()
                                         if name.startswith(("denseblock", "transition"))}, library)
    blocks = [m for name, m in features.named_children() if name.startswith("denseblock")]
    transitions = [m for name, m in features.named_children() if name.startswith("transition")]
    first_layer = blocks[0].denselayer1
    growth_rate = first_layer.conv2.out_channels
    bn_size, rest = divmod(first_layer.conv1.out_channels, growth_rate)
    compressions = {t.conv.out_channels / t.conv.in_channels for t in transitions}
    if rest or any(t.conv.out_channels != t.conv.in_channels // 2 for t in transitions):
        raise UnsupportedArchitectureError(
            f"{library} DenseNet with compression {sorted(compressions)} or bn_size not a whole multiple "
            f"of the growth rate: not a {library}-built DenseNet convolab can match")
    spec = DenseNetSpec(tuple(len(b) for b in blocks), growth_rate, features.conv0.out_channels, bn_size, 0.5)
    kwargs = dict(num_classes=classifier_classes(peer, "classifier", library), in_chans=features.conv0.in_channels,
                  drop_rate=float(first_layer.drop_rate), **kwargs)
    name = _DENSENETS.get((spec.block_config, growth_rate, spec.num_init_features, bn_size))
    return create_model(name, **kwargs) if name is not None else DenseNet(spec, **kwargs)
