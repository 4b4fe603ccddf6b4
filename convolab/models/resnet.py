"""ResNet (He et al. 2015) for ImageNet and CIFAR, and pre-activation ResNet (He et al. 2016).

ImageNet models are torchvision-compatible: same module names (conv1, bn1, layer1..4; torchvision's
`fc` is our `head.fc`), same parameters, stride on the bottleneck's 3x3 ("v1.5"); the `_v1` models
put it on the first 1x1 as the paper does. CIFAR models follow the paper's section 4.2: three
stages of 16/32/64 channels, 6n+2 layers, parameter-free zero-pad shortcuts (option A).
The `plain*` models are the paper's plain nets of the degradation experiment: the same ResNets
with `shortcut="none"` (no shortcut, hence no projection either). The CIFAR pre-activation
bottleneck nets put the stride on the first 1x1 as the authors' code does (KaimingHe/resnet-1k-layers);
preact_resnet50 keeps fb.resnet.torch's stride on the 3x3.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from .._registry import register_model
from ..layers import BasicBlock, Bottleneck, ClassifierHead, PreActBasicBlock, PreActBottleneck, make_stage
from ..layers.residual import ResidualBlock, Shortcut
from ._base import ConvNet, FeatureInfo, on_meta, refuse_fixed_options, stem_data_config


class Stage(NamedTuple):
    """One row of the paper's Table 1: `blocks` blocks of width `planes` (output planes x expansion)."""

    blocks: int
    planes: int
    stride: int


def imagenet_stages(blocks: Sequence[int]) -> tuple[Stage, ...]:
    """conv2_x .. conv5_x of Table 1: widths 64/128/256/512, the last three halving H and W."""
    if len(blocks) != 4:
        raise ValueError(f"an ImageNet ResNet has 4 stages, got block counts {tuple(blocks)}")
    widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
    return tuple(Stage(*row) for row in zip(blocks, widths, strides, strict=True))


def cifar_stages(depth: int, block: ResidualBlock) -> tuple[Stage, ...]:
    """Three stages of 16/32/64 at 32/16/8 pixels; `depth` = 6n+2 (basic) or 9n+2 (bottleneck)."""
    per_block = 3 if block.expansion == 4 else 2
    n, rest = divmod(depth - 2, 3 * per_block)
    if rest or n < 1:
        raise ValueError(f"a CIFAR ResNet of {block.__name__} needs depth = {3 * per_block}n+2, got {depth}")
    return (Stage(n, 16, 1), Stage(n, 32, 2), Stage(n, 64, 2))


class ResNet(ConvNet):
    """Stem, residual stages `layer1..`, global pool and linear head.

    stem="imagenet": conv 7x7/2 + max-pool 3x3/2 (224 input); stem="cifar": conv 3x3/1 (32 input).
    Pre-activation blocks get a stem without BN (the first block normalizes, and its shortcut takes
    the normalized input) and a final BN-ReLU before pooling, as He et al. 2016 place them.
    shortcut: "A" zero-pad, "B" 1x1 projection where the shape changes, "none" for a plain net
    whose blocks add nothing.
    """

    def __init__(self, block: ResidualBlock, stages: Sequence[Stage], num_classes: int = 1000,
                 in_chans: int = 3, stem: Literal["imagenet", "cifar"] = "imagenet", stem_width: int = 64,
                 shortcut: Shortcut = "B", stride_in_1x1: bool = False, drop_rate: float = 0.0,
                 img_size: int | None = None):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', not {stem!r}")
        if isinstance(stem_width, bool) or not isinstance(stem_width, int) or stem_width < 1:
            # (otherwise -4 is a traceback from torch, 0 a warning of zero-element tensors)
            raise ValueError(f"stem_width takes a whole number of at least 1, got {stem_width!r}")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.preact = block in (PreActBasicBlock, PreActBottleneck)
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False)
        if not self.preact:
            self.bn1 = nn.BatchNorm2d(stem_width)
            self.relu = nn.ReLU(inplace=True)
        reduction = 2 if stem == "imagenet" else 1
        # The stem's output is the first stage, as in timm (its `act1`; a pre-activation stem ends in conv1).
        self.feature_info = [FeatureInfo("conv1" if self.preact else "relu", stem_width, reduction)]
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            reduction *= 2
        channels = stem_width
        self.stage_names: list[str] = []
        for i, spec in enumerate(stages, start=1):
            stage = make_stage(block, channels, spec.planes, spec.blocks, spec.stride, shortcut,
                               stride_in_1x1=stride_in_1x1)
            if self.preact and i == 1:  # the stem's output is activated before the split (He et al. 2016, App.)
                stage[0].first_unit = True
            self.add_module(f"layer{i}", stage)
            channels = spec.planes * block.expansion
            reduction *= spec.stride
            self.stage_names.append(f"layer{i}")
            self.feature_info.append(FeatureInfo(f"layer{i}", channels, reduction))
        if self.preact:
            self.norm = nn.BatchNorm2d(channels)
            self.act = nn.ReLU(inplace=True)
        self.num_features = channels
        self.head = ClassifierHead(channels, num_classes, drop_rate)
        self.data_config = stem_data_config(stem, in_chans, img_size)
        self._init_weights()

    def _init_weights(self) -> None:
        if on_meta(self):  # (shapes only: nothing to draw)
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # Shapes for resnet50 at 224 (CIFAR: 16 x 32 x 32, then 64/128/256 or 16/32/64 at 32/16/8).
        x = self.conv1(x)                    # N x 64 x 112 x 112
        if not self.preact:
            x = self.relu(self.bn1(x))
        if hasattr(self, "maxpool"):
            x = self.maxpool(x)              # N x 64 x 56 x 56
        for name in self.stage_names:
            x = getattr(self, name)(x)       # layer1..4: N x 256 x 56 x 56 ... N x 2048 x 7 x 7
        if self.preact:
            x = self.act(self.norm(x))
        return x


def _resnet(block: ResidualBlock, blocks: Sequence[int], num_classes: int, in_chans: int,
            **kwargs: Any) -> ResNet:
    return ResNet(block, imagenet_stages(blocks), num_classes, in_chans, **kwargs)


_CIFAR_STEM = {"stem": "cifar", "stem_width": 16}


def _cifar_resnet(name: str, block: ResidualBlock, depth: int, num_classes: int, in_chans: int,
                  **kwargs: Any) -> ResNet:
    family = name.rstrip("0123456789")  # resnet, plain or preact_resnet: each has an ImageNet-stem 18
    refuse_fixed_options(name, kwargs, _CIFAR_STEM, f"{family}18 for the ImageNet stem")
    kwargs.setdefault("shortcut", "B" if block.expansion == 4 else "A")
    return ResNet(block, cifar_stages(depth, block), num_classes, in_chans, **_CIFAR_STEM, **kwargs)


def _without_shortcut(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A plain net's options: `shortcut="none"`; any other shortcut asks for the ResNet instead."""
    shortcut = kwargs.setdefault("shortcut", "none")
    if shortcut != "none":
        raise ValueError(f"{name} has no shortcut; for shortcut={shortcut!r} build {name.replace('plain', 'resnet')}")
    return kwargs


@register_model(aliases=("resnet",), pretrained=("torchvision", "timm"))  # ("resnet": the SPEC's compare line)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2]; 11,689,512 parameters."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return _resnet(BasicBlock, (3, 4, 6, 3), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 (torchvision v1.5, stride on the 3x3): bottlenecks [3, 4, 6, 3]."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101 (v1.5): bottlenecks [3, 4, 23, 3]."""
    return _resnet(Bottleneck, (3, 4, 23, 3), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152 (v1.5): bottlenecks [3, 8, 36, 3]."""
    return _resnet(Bottleneck, (3, 8, 36, 3), num_classes, in_chans, **kwargs)


@register_model
def resnet50_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-50 as in the paper: stride on the first 1x1 of the bottleneck."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes, in_chans, stride_in_1x1=True, **kwargs)


@register_model
def resnet101_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-101 as in the paper: stride on the first 1x1."""
    return _resnet(Bottleneck, (3, 4, 23, 3), num_classes, in_chans, stride_in_1x1=True, **kwargs)


@register_model
def resnet152_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """ResNet-152 as in the paper: stride on the first 1x1."""
    return _resnet(Bottleneck, (3, 8, 36, 3), num_classes, in_chans, stride_in_1x1=True, **kwargs)


@register_model
def resnet20(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-20 (n=3), option-A shortcuts; 269,722 parameters."""
    return _cifar_resnet("resnet20", BasicBlock, 20, num_classes, in_chans, **kwargs)


@register_model
def resnet32(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-32 (n=5)."""
    return _cifar_resnet("resnet32", BasicBlock, 32, num_classes, in_chans, **kwargs)


@register_model
def resnet44(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-44 (n=7)."""
    return _cifar_resnet("resnet44", BasicBlock, 44, num_classes, in_chans, **kwargs)


@register_model
def resnet56(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-56 (n=9)."""
    return _cifar_resnet("resnet56", BasicBlock, 56, num_classes, in_chans, **kwargs)


@register_model
def resnet110(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-110 (n=18)."""
    return _cifar_resnet("resnet110", BasicBlock, 110, num_classes, in_chans, **kwargs)


@register_model
def resnet1202(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-1202 (n=200), the paper's overfitting example (7.93% error); 19,421,274 params."""
    return _cifar_resnet("resnet1202", BasicBlock, 1202, num_classes, in_chans, **kwargs)


@register_model
def plain18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Plain-18 of He et al. 2015, Table 1: resnet18 with no shortcut (nor projection); 11,515,688 params."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes, in_chans, **_without_shortcut("plain18", kwargs))


@register_model
def plain34(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Plain-34 of He et al. 2015, Table 1: resnet34 with no shortcut (nor projection); 21,623,848 params."""
    return _resnet(BasicBlock, (3, 4, 6, 3), num_classes, in_chans, **_without_shortcut("plain34", kwargs))


@register_model
def plain20(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-20 of He et al. 2015, sec. 4.2: resnet20 with no shortcut; 269,722 parameters."""
    return _cifar_resnet("plain20", BasicBlock, 20, num_classes, in_chans, **_without_shortcut("plain20", kwargs))


@register_model
def plain32(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-32 of He et al. 2015, sec. 4.2: resnet32 with no shortcut."""
    return _cifar_resnet("plain32", BasicBlock, 32, num_classes, in_chans, **_without_shortcut("plain32", kwargs))


@register_model
def plain44(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-44 of He et al. 2015, sec. 4.2: resnet44 with no shortcut."""
    return _cifar_resnet("plain44", BasicBlock, 44, num_classes, in_chans, **_without_shortcut("plain44", kwargs))


@register_model
def plain56(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-56 of He et al. 2015, sec. 4.2: resnet56 with no shortcut (worse than plain-20: degradation)."""
    return _cifar_resnet("plain56", BasicBlock, 56, num_classes, in_chans, **_without_shortcut("plain56", kwargs))


@register_model
def plain110(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-110 of He et al. 2015, sec. 4.2: resnet110 with no shortcut."""
    return _cifar_resnet("plain110", BasicBlock, 110, num_classes, in_chans, **_without_shortcut("plain110", kwargs))


@register_model(layout_changes={2: "the first unit's shortcut adds the activated input, not the stem's output, "
                                   "as in He et al. 2016's appendix"})
def preact_resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Pre-activation ResNet-18 for ImageNet (He et al. 2016): BN-ReLU-conv basic blocks."""
    return _resnet(PreActBasicBlock, (2, 2, 2, 2), num_classes, in_chans, **kwargs)


@register_model
def preact_resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Pre-activation ResNet-50 for ImageNet: BN-ReLU-conv bottlenecks [3, 4, 6, 3]."""
    return _resnet(PreActBottleneck, (3, 4, 6, 3), num_classes, in_chans, **kwargs)


# (preact_resnet50 keeps revision 1: its first unit projects the activated input, as before)
_STRIDE_IN_1X1 = {2: "the downsampling units' stride moved from the 3x3 to the first 1x1, as in the authors' code"}


@register_model(layout_changes=_STRIDE_IN_1X1)
def preact_resnet164(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR pre-activation ResNet-164 (18 bottlenecks a stage, 1x1 projections, stride on the first
    1x1 as in the authors' resnet-pre-act.lua); 1,703,258 params."""
    kwargs.setdefault("stride_in_1x1", True)  # resnet-pre-act.lua: the stride is on the first 1x1
    return _cifar_resnet("preact_resnet164", PreActBottleneck, 164, num_classes, in_chans, **kwargs)


@register_model(layout_changes=_STRIDE_IN_1X1)
def preact_resnet1001(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR pre-activation ResNet-1001 (111 bottlenecks a stage), 4.92% error; 10,327,706 params."""
    kwargs.setdefault("stride_in_1x1", True)  # as preact_resnet164
    return _cifar_resnet("preact_resnet1001", PreActBottleneck, 1001, num_classes, in_chans, **kwargs)
