"""Which published weights each convolab model can load: the library, the peer model's name there, and the
options our model needs to match it. The weights' metadata (names, top-1, input size, classes) is read
from torchvision's weights enums and timm's pretrained configs, which know it without downloading.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConvolabError

TIMM_MISSING = "weights from timm need the timm package, which is not installed: pip install timm"


class WeightsError(ConvolabError):
    """Published weights that do not exist, cannot be fetched, or are damaged."""


@dataclass(frozen=True)
class Source:
    """Published weights of one convolab model: `library` ("torchvision" or "timm") builds `peer` with them."""

    model: str
    library: str
    peer: str
    options: dict[str, Any] = field(default_factory=dict)  # our model's options that match the peer with weights
    default: str = ""  # timm: the tag `pretrained=True` means
    top1: dict[str, float] = field(default_factory=dict)  # timm: published top-1 by tag (timm's results tables)


# GoogLeNet and Inception-v3: torchvision's weights set `transform_input` (ImageNet statistics to the
# [-1, 1] scaling they were trained with); its builders keep Inception-v3's auxiliary head, drop GoogLeNet's.
SOURCES: dict[str, Source] = {s.model: s for s in (
    *(Source(f"resnet{d}", "torchvision", f"resnet{d}") for d in (18, 34, 50, 101, 152)),
    *(Source(f"densenet{d}", "torchvision", f"densenet{d}") for d in (121, 169, 201, 161)),
    Source("googlenet_tv", "torchvision", "googlenet", {"aux_logits": False, "transform_input": True}),
    Source("inception_v3", "torchvision", "inception_v3", {"aux_logits": True, "transform_input": True}),
    # timm's configs carry no top-1: these are timm's results/results-imagenet.csv, as docs REFERENCE.md cites them
    Source("inception_v4", "timm", "inception_v4", default="tf_in1k", top1={"tf_in1k": 80.144}),
    Source("inception_resnet_v2", "timm", "inception_resnet_v2", default="tf_in1k",
           top1={"tf_in1k": 80.434, "tf_ens_adv_in1k": 79.998}),
)}


@dataclass(frozen=True)
class Weights:
    """One set of published weights and what it says about itself."""

    source: Source
    name: str  # torchvision: the enum member (IMAGENET1K_V2); timm: the tag (tf_in1k)
    top1: float | None
    crop_size: int
    crop_pct: float  # the crop's share of the resized image: resize to crop_size / crop_pct, then crop
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    handle: Any = None  # torchvision's weights enum member, or timm's pretrained name ("inception_v4.tf_in1k")

    @property
    def label(self) -> str:
        return f"{self.source.library}:{self.source.peer}.{self.name}"

    @property
    def resize_size(self) -> int:
        return int(self.crop_size / self.crop_pct)


def models_with_weights() -> list[str]:
    return sorted(SOURCES)


def no_weights_message(name: str) -> str:
    return (f"{name} has no published weights; the models with weights from torchvision or timm are: "
            f"{', '.join(models_with_weights())} (or use weights of your own: a checkpoint or a safetensors folder)")


def _torchvision_weights(source: Source) -> list[Weights]:
    import torchvision

    found = []
    for member in torchvision.models.get_model_weights(source.peer):
        preprocess = member.transforms()
        metrics = member.meta.get("_metrics", {}).get("ImageNet-1K", {})
        crop = int(preprocess.crop_size[0])
        found.append(Weights(source, member.name, metrics.get("acc@1"), crop, crop / int(preprocess.resize_size[0]),
                             tuple(preprocess.mean), tuple(preprocess.std),
                             str(preprocess.interpolation.value), member))
    default = torchvision.models.get_model_weights(source.peer).DEFAULT.name
    return sorted(found, key=lambda w: w.name != default)  # the default first


def _timm_weights(source: Source) -> list[Weights]:
    try:
        import timm
    except ImportError:
        raise WeightsError(TIMM_MISSING) from None
    found = []
    for full in timm.list_pretrained(source.peer + ".*"):
        cfg = timm.models.get_pretrained_cfg(full)
        tag = full.split(".", 1)[1]
        crop = int(cfg.input_size[-1])
        found.append(Weights(source, tag, source.top1.get(tag), crop, float(cfg.crop_pct), tuple(cfg.mean),
                             tuple(cfg.std), str(cfg.interpolation), full))
    return sorted(found, key=lambda w: w.name != source.default)


def published_weights(source: Source) -> list[Weights]:
    """Every set of weights the library publishes for `source`, the one `pretrained=True` picks first."""
    return _torchvision_weights(source) if source.library == "torchvision" else _timm_weights(source)


def weights_table(pattern: str = "*") -> list[dict[str, Any]]:
    """One row per set of published weights of the models matching `pattern`: model, source, weights name,
    published top-1 (None where the library gives none), input size (C, H, W), and whether it is the default."""
    rows = []
    for name in sorted(n for n in SOURCES if fnmatch.fnmatchcase(n, pattern)):
        for i, weights in enumerate(published_weights(SOURCES[name])):
            rows.append({"model": name, "source": weights.source.library, "weights": weights.name,
                         "top1": weights.top1, "input_size": [3, weights.crop_size, weights.crop_size],
                         "crop_pct": round(weights.crop_pct, 4), "default": i == 0})
    return rows


def choose_weights(name: str, pretrained: bool | str) -> Weights:
    """The weights `pretrained` names for registered model `name`: True (the best published), a library
    ("torchvision", "timm") or a weights name ("IMAGENET1K_V2", "tf_in1k")."""
    source = SOURCES.get(name)
    if source is None:
        raise WeightsError(no_weights_message(name))
    if pretrained in ("torchvision", "timm") and pretrained != source.library:
        raise WeightsError(f"convolab loads {name}'s weights from {source.library} only, not from {pretrained}; "
                           f"give --weights {source.library} or --pretrained (pretrained={source.library!r} or True "
                           "in Python)")
    available = published_weights(source)
    if pretrained is True or pretrained == source.library:
        return available[0]
    for weights in available:
        if str(pretrained) in (weights.name, f"{source.peer}.{weights.name}", weights.label):
            return weights
    raise WeightsError(f"{name} has no weights named {pretrained!r}; {source.library} publishes "
                       f"{', '.join(w.name for w in available)} (without a name: {available[0].name})")


__all__ = ["SOURCES", "Source", "Weights", "WeightsError", "choose_weights", "models_with_weights",
           "no_weights_message", "published_weights", "weights_table"]
