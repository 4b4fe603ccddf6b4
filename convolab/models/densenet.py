"""DenseNet (Huang et al. 2017) for ImageNet, torchvision-compatible, and the paper's CIFAR nets.

ImageNet models keep torchvision's module names (`features.conv0`, `features.denseblock1.
denselayer1.norm1`, ...; torchvision's `classifier` is our `head.fc`). CIFAR models follow the
authors' code (liuzhuang13/DenseNet): a 3x3 stem with no BN, three dense blocks at 32/16/8 pixels,
a final BN-ReLU before pooling, dropout after every conv but the stem (bottleneck 1x1, 3x3 and
transition conv) and convs drawn from N(0, 2 / (k*k*out)). ImageNet models keep torchvision's
dropout (after the 3x3 only) and init (Kaiming fan_in), so its weights convert as they are.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .._registry import register_model
from ..layers import ClassifierHead, DenseBlock, Transition
from ._base import ConvNet, FeatureInfo, on_meta, refuse_fixed_options, stem_data_config


@dataclass(frozen=True)
class DenseNetSpec:
    """The paper's table: layers per block, growth rate k, stem width, bottleneck and compression."""

    block_config: tuple[int, ...]
    growth_rate: int
    num_init_features: int
    bn_size: int | None = 4       # None: no 1x1 bottleneck (plain DenseNet, not -B)
    compression: float = 0.5      # 1.0: no compression (not -C)


class DenseNet(ConvNet):
    """Stem, dense blocks joined by transitions, final BN-ReLU, global pool and linear head."""

    def __init__(self, spec: DenseNetSpec, num_classes: int = 1000, in_chans: int = 3,
                 stem: Literal["imagenet", "cifar"] = "imagenet", drop_rate: float = 0.0,
                 head_drop_rate: float = 0.0, img_size: int | None = None):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', not {stem!r}")
        self.num_classes, self.in_chans = num_classes, in_chans
        channels = spec.num_init_features
        if stem == "imagenet":
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv0=nn.Conv2d(in_chans, channels, 7, stride=2, padding=3, bias=False),
                norm0=nn.BatchNorm2d(channels),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(3, stride=2, padding=1),
            )
            stem_out, stem_reduction, reduction = "relu0", 2, 4
        else:
            layers = OrderedDict(conv0=nn.Conv2d(in_chans, channels, 3, padding=1, bias=False))
            stem_out, stem_reduction, reduction = "conv0", 1, 1
        # The CIFAR form follows the authors' code: dropout after each conv but the first
        # (DenseConnectLayer.lua; densenet.lua addTransition); torchvision drops after the 3x3 only.
        self.authors_layout = stem == "cifar"
        transition_drop = drop_rate if self.authors_layout else 0.0
        # Stages as timm's: the stem (after its BN-ReLU; before the max-pool), the blocks but the last (before
        # their transitions), and the features after the final BN-ReLU (timm's norm5 is one BN-act module).
        self.feature_info = [FeatureInfo(f"features.{stem_out}", channels, stem_reduction)]
        for i, num_layers in enumerate(spec.block_config, start=1):
            block = DenseBlock(num_layers, channels, spec.growth_rate, spec.bn_size, drop_rate,
                               drop_every_conv=self.authors_layout)
            layers[f"denseblock{i}"] = block
            channels = block.out_channels
            if i < len(spec.block_config):
                self.feature_info.append(FeatureInfo(f"features.denseblock{i}", channels, reduction))
                transition = Transition(channels, spec.compression, drop_rate=transition_drop)
                layers[f"transition{i}"] = transition
                channels = transition.out_channels
                reduction *= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        layers["relu5"] = nn.ReLU(inplace=True)
        self.feature_info.append(FeatureInfo("features.relu5", channels, reduction))
        # The last block's own output (before norm5), a stage until timm's stages were taken: still a cut for `until`
        # (a run's recorded `until` rebuilds with it).
        self.cut_names = (f"features.denseblock{len(spec.block_config)}",)
        self.features = nn.Sequential(layers)
        self.num_features = channels
        self.head = ClassifierHead(channels, num_classes, head_drop_rate)
        self.data_config = stem_data_config(stem, in_chans, img_size)
        self._init_weights()

    def _init_weights(self) -> None:
        if on_meta(self):  # (shapes only: nothing to draw)
            return
        # The authors' ConvInit draws N(0, sqrt(2 / (kW*kH*nOutputPlane))): Kaiming fan_out (densenet.lua);
        # torchvision's DenseNet uses kaiming_normal_ with its default fan_in.
        mode = "fan_out" if self.authors_layout else "fan_in"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # densenet121 at 224: stem N x 64 x 56 x 56 -> blocks N x 256 x 56 x 56, N x 512 x 28 x 28,
        # N x 1024 x 14 x 14, N x 1024 x 7 x 7 (each transition halves channels and H, W).
        return self.features(x)


def _densenet(spec: DenseNetSpec, num_classes: int, in_chans: int, **kwargs: Any) -> DenseNet:
    return DenseNet(spec, num_classes, in_chans, **kwargs)


def _cifar_densenet(name: str, spec: DenseNetSpec, num_classes: int, in_chans: int, **kwargs: Any) -> DenseNet:
    refuse_fixed_options(name, kwargs, {"stem": "cifar"}, "densenet121 for the ImageNet stem")
    return DenseNet(spec, num_classes, in_chans, stem="cifar", **kwargs)


def _cifar_spec(depth: int, growth_rate: int, bc: bool) -> DenseNetSpec:
    """Three equal blocks of (depth - 4) / 3 layers (halved for BC: each layer has two convs)."""
    per_block, rest = divmod(depth - 4, 6 if bc else 3)
    if rest or per_block < 1:
        kind, step = ("DenseNet-BC", 6) if bc else ("DenseNet", 3)
        raise ValueError(f"a CIFAR {kind} needs depth = {step}n+4, got {depth}")
    if bc:
        return DenseNetSpec((per_block,) * 3, growth_rate, 2 * growth_rate, bn_size=4, compression=0.5)
    return DenseNetSpec((per_block,) * 3, growth_rate, 16, bn_size=None, compression=1.0)


@register_model(aliases=("densenet",), pretrained=("torchvision", "timm"))  # ("densenet": as "resnet")
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-121 (BC, k=32): blocks [6, 12, 24, 16]; 7,978,856 parameters."""
    return _densenet(DenseNetSpec((6, 12, 24, 16), 32, 64), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-169 (BC, k=32): blocks [6, 12, 32, 32]."""
    return _densenet(DenseNetSpec((6, 12, 32, 32), 32, 64), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-201 (BC, k=32): blocks [6, 12, 48, 32]."""
    return _densenet(DenseNetSpec((6, 12, 48, 32), 32, 64), num_classes, in_chans, **kwargs)


@register_model(pretrained=("torchvision", "timm"))
def densenet161(num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """DenseNet-161 (BC, k=48, 96 stem channels): blocks [6, 12, 36, 24]."""
    return _densenet(DenseNetSpec((6, 12, 36, 24), 48, 96), num_classes, in_chans, **kwargs)


@register_model
def densenet40_k12(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet (L=40, k=12), no bottleneck, no compression; 1,019,722 parameters."""
    return _cifar_densenet("densenet40_k12", _cifar_spec(40, 12, bc=False), num_classes, in_chans, **kwargs)


@register_model
def densenet100_k12(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet (L=100, k=12), no bottleneck, no compression; 6,979,642 parameters."""
    return _cifar_densenet("densenet100_k12", _cifar_spec(100, 12, bc=False), num_classes, in_chans, **kwargs)


@register_model
def densenet100_k24(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet (L=100, k=24), no bottleneck, no compression; 27,249,082 parameters."""
    return _cifar_densenet("densenet100_k24", _cifar_spec(100, 24, bc=False), num_classes, in_chans, **kwargs)


@register_model
def densenet_bc100_k12(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet-BC (L=100, k=12): 16 bottleneck layers a block, compression 0.5; 769,162."""
    return _cifar_densenet("densenet_bc100_k12", _cifar_spec(100, 12, bc=True), num_classes, in_chans, **kwargs)


@register_model
def densenet_bc250_k24(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet-BC (L=250, k=24): 41 bottleneck layers a block; 15,324,406 parameters."""
    return _cifar_densenet("densenet_bc250_k24", _cifar_spec(250, 24, bc=True), num_classes, in_chans, **kwargs)


@register_model
def densenet_bc190_k40(num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet-BC (L=190, k=40): 31 bottleneck layers a block; 25,624,430 parameters."""
    return _cifar_densenet("densenet_bc190_k40", _cifar_spec(190, 40, bc=True), num_classes, in_chans, **kwargs)
