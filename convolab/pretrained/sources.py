"""Which published weights each convolab model can load: the library, the peer model's name there, and the
options our model needs to match it. The weights' metadata (names, top-1, input size, classes) is read
from torchvision's weights enums and timm's pretrained configs, which know it without downloading.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from .._registry import natural_key
from ..data.decode import resize_side
from ..errors import ConvolabError

TIMM_MISSING = "weights from timm need the timm package, which is not installed: pip install timm"
IMAGENET_CLASSES = 1000


class WeightsError(ConvolabError):
    """Published weights that do not exist, cannot be fetched, or are damaged."""


@dataclass(frozen=True)
class Source:
    """Published weights of one convolab model: `library` ("torchvision" or "timm") builds `peer` with them."""

    model: str
    library: str
    peer: str
    options: dict[str, Any] = field(default_factory=dict)  # our model's options that match the peer with weights
    top1: dict[str, float] = field(default_factory=dict)  # timm: published top-1 by tag (timm's results tables)


# timm's configs carry no top-1: these are the `top1` column of timm's results/results-imagenet.csv (one row per
# tag; the version stored at huggingface/pytorch-image-models@0173a139), measured at the tag's test size where its
# cfg gives one (test_input_size, test_crop_pct: 288 px, crop 1.0 for resnet50.a1_in1k, which convolab runs, as
# timm does by default, at its input size 224, crop 0.95), else at its input size. A tag that the CSV lacks
# (resnet34.tv_in1k, resnet34.ra4_e3600_r224_in1k) has none.
_RESNET_TOP1 = {
    18: {"a1_in1k": 73.158, "a2_in1k": 72.372, "a3_in1k": 68.254, "fb_ssl_yfcc100m_ft_in1k": 72.594,
         "fb_swsl_ig1b_ft_in1k": 73.282, "gluon_in1k": 70.838, "tv_in1k": 69.760},
    34: {"a1_in1k": 77.918, "a2_in1k": 77.158, "a3_in1k": 72.970, "bt_in1k": 76.480, "gluon_in1k": 74.578},
    50: {"a1_in1k": 81.214, "a1h_in1k": 80.676, "a2_in1k": 80.772, "a3_in1k": 78.048, "am_in1k": 78.998,
         "b1k_in1k": 80.706, "b2k_in1k": 80.454, "bt_in1k": 79.640, "c1_in1k": 80.912, "c2_in1k": 80.870,
         "d_in1k": 80.972, "fb_ssl_yfcc100m_ft_in1k": 79.234, "fb_swsl_ig1b_ft_in1k": 81.182, "gluon_in1k": 77.580,
         "ra_in1k": 79.836, "ram_in1k": 79.976, "tv2_in1k": 80.850, "tv_in1k": 76.130},
    101: {"a1_in1k": 82.322, "a1h_in1k": 82.778, "a2_in1k": 82.236, "a3_in1k": 79.814, "gluon_in1k": 79.310,
          "tv2_in1k": 81.890, "tv_in1k": 77.376},
    152: {"a1_in1k": 82.732, "a1h_in1k": 83.450, "a2_in1k": 82.608, "a3_in1k": 80.546, "gluon_in1k": 79.694,
          "tv2_in1k": 82.288, "tv_in1k": 78.322},
}
_DENSENET_TOP1 = {121: {"ra_in1k": 76.500, "tv_in1k": 74.764}, 169: {"tv_in1k": 75.900},
                  201: {"tv_in1k": 77.286}, 161: {"tv_in1k": 77.358}}
_INCEPTION_V3_TOP1 = {"gluon_in1k": 78.806, "tf_adv_in1k": 77.592, "tf_in1k": 77.862, "tv_in1k": 77.434}

# Each model's sources, torchvision's first where it has weights (what `pretrained=True` loads). GoogLeNet and
# Inception-v3: torchvision's weights set `transform_input` (ImageNet statistics to the [-1, 1] scaling they were
# trained with); its builders keep Inception-v3's auxiliary head, drop GoogLeNet's. timm's Inception-v3 weights
# expect their own mean and std instead (no transform) and timm builds it without the aux head.
_ALL = (
    *(Source(f"resnet{d}", "torchvision", f"resnet{d}") for d in (18, 34, 50, 101, 152)),
    *(Source(f"resnet{d}", "timm", f"resnet{d}", top1=top1) for d, top1 in _RESNET_TOP1.items()),
    *(Source(f"densenet{d}", "torchvision", f"densenet{d}") for d in (121, 169, 201, 161)),
    *(Source(f"densenet{d}", "timm", f"densenet{d}", top1=top1) for d, top1 in _DENSENET_TOP1.items()),
    Source("googlenet_tv", "torchvision", "googlenet", {"aux_logits": False, "transform_input": True}),
    Source("inception_v3", "torchvision", "inception_v3", {"aux_logits": True, "transform_input": True}),
    Source("inception_v3", "timm", "inception_v3", top1=_INCEPTION_V3_TOP1),
    # (another version of the same CSV, as docs REFERENCE.md cites them)
    Source("inception_v4", "timm", "inception_v4", top1={"tf_in1k": 80.144}),
    Source("inception_resnet_v2", "timm", "inception_resnet_v2", top1={"tf_in1k": 80.434, "tf_ens_adv_in1k": 79.998}),
)
SOURCES: dict[str, tuple[Source, ...]] = {name: tuple(s for s in _ALL if s.model == name) for name in dict.fromkeys(
    s.model for s in _ALL)}
LIBRARIES = ("torchvision", "timm")


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
        """`library:peer.name`, e.g. `torchvision:resnet50.IMAGENET1K_V2`: how records and messages name them."""
        return f"{self.source.library}:{self.source.peer}.{self.name}"

    @property
    def resize_size(self) -> int:
        """The side in pixels an image is resized to before the centre crop: crop_size / crop_pct, rounded down
        (not by float round-off: `resize_side`)."""
        return resize_side(self.crop_size, self.crop_pct)


def models_with_weights() -> list[str]:
    """The registered names of the models that load published weights (torchvision's or timm's), sorted."""
    return sorted(SOURCES)


def no_weights_message(name: str) -> str:
    """The error for a model `name` without published weights: the models that have some, or weights of one's own."""
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
        # convolab's weights are ImageNet-1k classifiers (its class names, head and top-1 are those): tags of other
        # classes are left out (resnet50.bamboo: a backbone without a head, num_classes 0)
        if cfg.num_classes != IMAGENET_CLASSES or cfg.label_offset:
            continue
        crop = int(cfg.input_size[-1])
        found.append(Weights(source, cfg.tag, source.top1.get(cfg.tag), crop, float(cfg.crop_pct), tuple(cfg.mean),
                             tuple(cfg.std), str(cfg.interpolation), full))
    default = timm.models.get_pretrained_cfg(source.peer).tag  # what timm.create_model(peer, pretrained=True) loads
    return sorted(found, key=lambda w: w.name != default)  # the default first


def published_weights(source: Source) -> list[Weights]:
    """Every set of weights the library publishes for `source`, the one its library loads by default first."""
    return _torchvision_weights(source) if source.library == "torchvision" else _timm_weights(source)


def weights_table(pattern: str = "*") -> list[dict[str, Any]]:
    """One row per set of published weights of the models matching `pattern`: model, source, weights name,
    published top-1 (None where the library gives none), input size (C, H, W), and whether it is the default
    (the first source's first weights)."""
    rows = []
    for name in sorted((n for n in SOURCES if fnmatch.fnmatchcase(n, pattern)), key=natural_key):
        for weights in (w for source in SOURCES[name] for w in published_weights(source)):
            rows.append({"model": name, "source": weights.source.library, "weights": weights.name,
                         "top1": weights.top1, "input_size": [3, weights.crop_size, weights.crop_size],
                         "crop_pct": round(weights.crop_pct, 4), "default": not rows or rows[-1]["model"] != name})
    return rows


def _names(source: Source) -> str:
    """`source`'s weights names for an error, or why they cannot be listed (timm not installed)."""
    try:
        return f"{source.library} publishes {', '.join(w.name for w in published_weights(source))}"
    except WeightsError as err:
        return f"{source.library}'s cannot be listed: {err}"


def choose_weights(name: str, pretrained: bool | str) -> Weights:
    """The weights `pretrained` names for registered model `name`: True (the first source's default), a library
    ("torchvision", "timm": its default), or a weights name, bare ("IMAGENET1K_V2", "a1_in1k"), with the peer's
    name ("resnet50.a1_in1k") or with the library's too ("timm:resnet50.a1_in1k"). torchvision's names are upper
    case, timm's lower case: a bare name is looked up in each source in turn, and never names two."""
    sources = SOURCES.get(name)
    if sources is None:
        raise WeightsError(no_weights_message(name))
    libraries = [s.library for s in sources]
    if pretrained is True or pretrained in LIBRARIES:
        source = sources[0] if pretrained is True else next((s for s in sources if s.library == pretrained), None)
        if source is None:
            only = " and ".join(libraries)
            raise WeightsError(f"convolab loads {name}'s weights from {only} only, not from {pretrained}; give "
                               f"`weights` {libraries[0]} or `pretrained` (pretrained={libraries[0]!r} or True in "
                               "Python)")
        return published_weights(source)[0]
    given = str(pretrained)
    library = given.split(":", 1)[0] if ":" in given else None
    looked_in = [s for s in sources if s.library == library] if library in libraries else list(sources)
    for source in looked_in:
        try:
            available = published_weights(source)
        except WeightsError:  # (timm not installed: a torchvision name still loads; no name found says why)
            continue
        for weights in available:
            if given in (weights.name, f"{source.peer}.{weights.name}", weights.label,
                         f"{source.library}:{weights.name}"):
                return weights
    default = choose_weights(name, True) if looked_in[0] is sources[0] else None
    tail = f" (without a name: {default.name}, from {default.source.library})" if default else ""
    raise WeightsError(f"{name} has no weights named {pretrained!r}; {'; '.join(_names(s) for s in looked_in)}{tail}")


__all__ = ["LIBRARIES", "SOURCES", "Source", "Weights", "WeightsError", "choose_weights",
           "models_with_weights", "no_weights_message", "published_weights", "weights_table"]
