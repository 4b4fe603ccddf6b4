"""The API every convolab model shares (after timm): features, head, classifier reset, data config."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..layers.checkpointing import set_grad_checkpointing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _whole_number(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_num_classes(num_classes: object) -> int:
    """`num_classes` as an int >= 0 (0: no classifier, the model gives its pooled features, as in timm);
    anything else is a ConfigError (a ValueError) of one line, before any layer is built."""
    if not _whole_number(num_classes) or num_classes < 0:  # type: ignore[operator]
        raise ConfigError(f"num_classes must be a whole number >= 0 (0 drops the classifier: the model gives its "
                          f"pooled features), got {num_classes!r}")
    return int(num_classes)  # type: ignore[arg-type]


def check_global_pool(global_pool: object) -> None:
    """timm's `reset_classifier(num_classes, global_pool)`: "avg" (or None) keeps the head's own pooling, the only
    one convolab's heads have; another (timm's "" for the unpooled map, "max") is a ConfigError of one line."""
    if global_pool not in (None, "avg"):
        raise ConfigError(f"global_pool {global_pool!r}: convolab's heads keep their own pooling; leave `global_pool` "
                          "out (or give 'avg'), and take the map before it from forward_features(x)")


def check_in_chans(in_chans: object) -> int:
    """`in_chans` as an int >= 1, else a ConfigError (a ValueError) of one line."""
    if not _whole_number(in_chans) or in_chans < 1:  # type: ignore[operator]
        raise ConfigError(f"in_chans must be a whole number >= 1 (the input's channels: 3 for colour, 1 for "
                          f"grey), got {in_chans!r}")
    return int(in_chans)  # type: ignore[arg-type]


def check_img_size(img_size: object) -> int:
    """`img_size` (the input's side in pixels) as an int >= 1, else a ConfigError (a ValueError) of one line."""
    if not _whole_number(img_size) or img_size < 1:  # type: ignore[operator]
        raise ConfigError(f"img_size must be a whole number >= 1 (the input's side in pixels), got {img_size!r}")
    return int(img_size)  # type: ignore[arg-type]


def refuse_fixed_options(name: str, options: dict, fixed: dict, instead: str) -> None:
    """A ConfigError of one line when `options` sets what the entry `name` fixes itself (`fixed`)."""
    given = sorted(set(options) & set(fixed))
    if given:
        settings = " and ".join(f"{key}={value!r}" for key, value in fixed.items())
        raise ConfigError(f"{name} fixes {settings} itself; drop {', '.join(given)}, or build {instead}")


def move_like(module: nn.Module, reference: torch.Tensor | None) -> nn.Module:
    """`module` on the device and dtype of `reference` (a fresh layer is float32 on the CPU); as is without one."""
    return module if reference is None else module.to(reference.device, reference.dtype)


@dataclass(frozen=True)
class DataConfig:
    """What a model expects of its input: size (C, H, W) and per-channel normalization."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def to_dict(self) -> dict:
        """input_size, mean and std as a dict, the tuples kept as tuples."""
        return asdict(self)


def data_config_for(in_chans: int, size: int, mean: tuple[float, ...] = IMAGENET_MEAN,
                    std: tuple[float, ...] = IMAGENET_STD) -> DataConfig:
    """A DataConfig whose mean/std match `in_chans` (grey input averages the RGB statistics)."""
    size = check_img_size(size)
    if len(mean) != in_chans:
        mean = (sum(mean) / len(mean),) * in_chans
        std = (sum(std) / len(std),) * in_chans
    return DataConfig((in_chans, size, size), tuple(mean), tuple(std))


def stem_data_config(stem: str, in_chans: int, img_size: int | None = None) -> DataConfig:
    """The input of an ImageNet-stem model (224, ImageNet statistics) or a CIFAR-stem one (32, CIFAR-10)."""
    if stem == "imagenet":
        return data_config_for(in_chans, 224 if img_size is None else img_size, IMAGENET_MEAN, IMAGENET_STD)
    return data_config_for(in_chans, 32 if img_size is None else img_size, CIFAR10_MEAN, CIFAR10_STD)


@dataclass
class FeatureInfo:
    """One stage whose output can be taken as features: module name, channels, total stride.
    Read as attributes (`info.num_chs`) or as timm's dicts (`info["num_chs"]`, `info.get("module")`)."""

    module: str
    num_chs: int
    reduction: int

    def keys(self) -> tuple[str, ...]:
        """timm's keys of a stage's dict, so `dict(info)` gives one: num_chs, reduction, module."""
        return ("num_chs", "reduction", "module")

    def __getitem__(self, key: str) -> str | int:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default: object = None) -> object:
        """`info[key]`, or `default` for a key timm's dict would not have."""
        return getattr(self, key) if key in self.keys() else default


def torchvision_input(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalized RGB as torchvision's ported GoogLeNet and Inception-v3 weights expect it, (x - 0.5) /
    0.5 of [0, 1] pixels (their `transform_input`). Only 3 channels: a grey batch would broadcast to three
    (torchvision's own fails on it)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise RuntimeError(f"transform_input takes 3-channel RGB images, got {x.shape[1] if x.dim() > 1 else '?'} "
                           "channels")
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


def on_meta(model: nn.Module) -> bool:
    """Whether the model was built on the meta device (shapes only): drawing its weights would be wasted work, and
    slow there (each draw runs through PyTorch's Python reference kernels: 6 of `convolab models`' 12 s)."""
    return any(p.is_meta for p in model.parameters())


def init_xavier(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Conv2d and Linear (d2l's train_ch6 init):
    sigmoid networks stall under PyTorch's default initialization. Nothing to draw on the meta device."""
    if on_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_truncated_normal(model: nn.Module, std: float, stds: dict[nn.Module, float] | None = None) -> None:
    """torchvision's initialization of its GoogLeNet (std 0.01) and Inception-v3 (0.1, with `stds` for its auxiliary
    classifier, 0.001): every Conv2d and Linear weight drawn from N(0, std) cut at -2 and 2, the std of a module in
    `stds` its own, biases left as PyTorch made them (batch norms start at 1 and 0). Nothing to draw on meta."""
    if on_meta(model):
        return
    stds = stds or {}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=stds.get(m, std), a=-2.0, b=2.0)


class ConvNet(nn.Module):
    """Base class: `forward(x) == forward_head(forward_features(x))`.

    Subclasses set `self.num_features`, `self.num_classes`, `self.in_chans`, `self.feature_info` and
    `self.data_config`, and implement `forward_features`. Most also set `self.head` (a module with `.fc`,
    `.reset(n)` and `forward(x, pre_logits)`), which the default `forward_head`, `get_classifier` and
    `reset_classifier` use; a subclass without one overrides those three (MultiTaskNet and MultiInputNet,
    whose classifier is `get_classifier()`, not a `head`). `pretrained_cfg` (timm's) follows `data_config`.
    """

    head: nn.Module
    num_features: int
    num_classes: int
    in_chans: int
    feature_info: list[FeatureInfo]
    data_config: DataConfig
    aux_names: tuple[str, ...] = ()
    model_name: str = ""

    # timm's `pretrained_cfg` (and its older name `default_cfg`), so that timm.data.resolve_model_data_config(model)
    # gives the model's own input size, mean and std, not timm's 224 px and ImageNet statistics. Computed on each
    # read from `data_config` (which training and pretrained weights change) and the classifier; keys assigned
    # (the published weights' classes, crop_pct, interpolation...) win. Kept in the instance's __dict__ under its
    # own name, as the plain attribute it was before. Assign a dict to change it: the dict read is a copy.
    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """input_size, mean, std (`data_config`), num_classes, first_conv and classifier (module names), and every
        key assigned to it over these; the published weights' `classes` only while the head has as many."""
        own, assigned = self._own_cfg(), dict(self.__dict__.get("pretrained_cfg") or {})
        if "classes" in assigned and "num_classes" in own and len(assigned["classes"]) != own["num_classes"]:
            del assigned["classes"]  # (the names of a head since replaced: `num_classes` other than the weights')
        return {**own, **assigned}

    @pretrained_cfg.setter
    def pretrained_cfg(self, value: dict[str, Any] | None) -> None:
        self.__dict__["pretrained_cfg"] = value

    default_cfg = pretrained_cfg

    def _own_cfg(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        config, num_classes = getattr(self, "data_config", None), getattr(self, "num_classes", None)
        if isinstance(config, DataConfig):
            cfg.update(input_size=tuple(config.input_size), mean=tuple(config.mean), std=tuple(config.std))
        if _whole_number(num_classes):
            cfg["num_classes"] = int(num_classes)
        names = {id(m): name for name, m in self.named_modules()}
        first_conv = next((name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)), None)
        try:  # (never an AttributeError out of a property: nn.Module would say the property does not exist)
            classifier = names.get(id(self.get_classifier()))
        except (AttributeError, NotImplementedError):
            classifier = None
        cfg.update({k: v for k, v in (("first_conv", first_conv), ("classifier", classifier)) if v})
        return cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_chans x H x W -> the last feature map before the head, N x C x h x w; subclasses implement."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """`forward_features`' map -> N x num_classes logits; `pre_logits`: the N x num_features vector the final
        linear layer takes."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in_chans x H x W -> N x num_classes logits (num_classes 0: N x num_features pooled features)."""
        return self.forward_head(self.forward_features(x))

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All named outputs: `{"main": logits}` plus one entry per auxiliary head, in any mode."""
        return {"main": self(x)}

    def set_grad_checkpointing(self, enable: bool = True) -> int:
        """timm's: while training, each block's activations are recomputed in the backward pass instead of kept
        (less memory for one more forward pass; batch-norm statistics and dropout as without it:
        layers/checkpointing.py); the number of blocks."""
        return set_grad_checkpointing(self, enable)

    def get_classifier(self) -> nn.Module:
        """The final linear layer, `head.fc` (an nn.Identity when num_classes is 0)."""
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the final linear layer for `num_classes` (0 drops it: the model gives features); `global_pool` as
        timm's, "avg" or None (`check_global_pool`)."""
        num_classes = check_num_classes(num_classes)
        check_global_pool(global_pool)
        reference = next(self.parameters(), None)
        self.head.reset(num_classes)
        move_like(self.head.fc, reference)
        self.num_classes = num_classes
