"""`create_model(name, pretrained=...)`: a registered model with published weights or weights from a file,
carrying their metadata (classes, input size, crop, mean, std) as `model.pretrained_cfg`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models import DataConfig, get_entry
from ..models import create_model as build_model
from ..models._features import features_only as feature_maps
from ..models._features import truncate
from ..training.checkpoint import checkpoint_model, load_checkpoint
from .load import fetch_pretrained
from .sources import WeightsError, choose_weights

# Options that cut a model after it is built, so they combine with any weights.
_CUTS = ("features_only", "out_indices", "until")
# What a weights file's name ends with: such a string is a path, a missing file said as such (never taken
# for a weights name).
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
PRETRAINED_CFG_KEYS = ("weights", "classes", "image_size", "crop_pct", "interpolation", "mean", "std", "preprocess")


def is_weights_path(pretrained: Any, name: str | None = None) -> bool:
    """Whether `pretrained` names a file or folder rather than a library or a weights name: a path with a
    folder separator or a weights file's suffix (.pth .pt .ckpt .bin .safetensors), existing or not. A bare
    word that is also one of model `name`'s weights names ("timm", "IMAGENET1K_V2") means the weights, even
    where a file of that name lies in the current folder (write ./timm for the file)."""
    if isinstance(pretrained, Path):
        return True
    if not isinstance(pretrained, str):
        return False
    if os.sep in pretrained or "/" in pretrained or pretrained.lower().endswith(WEIGHTS_SUFFIXES):
        return True
    if name is not None:
        try:
            choose_weights(get_entry(name).name, pretrained)
            return False
        except WeightsError:
            pass
    return Path(pretrained).expanduser().exists()


def _record_and_model(name: str, pretrained: bool | str | Path) -> tuple[dict[str, Any], nn.Module | None]:
    name = get_entry(name).name
    if not is_weights_path(pretrained, name):
        return fetch_pretrained(name, pretrained)
    path = Path(pretrained).expanduser()
    if not path.exists():
        raise ConfigError(f"file {pretrained} does not exist (pretrained= took it for a path); give an existing "
                          "checkpoint, run folder or safetensors file, or True / a weights name for published weights")
    record = load_checkpoint(path)
    if get_entry(str(record.get("model_name", ""))).name != name:
        raise ConfigError(f"{pretrained} holds the weights of {record.get('model_name')!r}, not {name}; "
                          f"give create_model({record.get('model_name')!r}, pretrained=...)")
    return record, None


def weights_record(name: str, pretrained: bool | str | Path) -> dict[str, Any]:
    """The checkpoint record of registered model `name` that `pretrained` names: published weights (True,
    "torchvision", "timm", a weights name) or a local convolab checkpoint, safetensors file or folder."""
    return _record_and_model(name, pretrained)[0]


def model_from_record(record: dict[str, Any], model: nn.Module | None = None) -> nn.Module:
    """The eval-mode model of a checkpoint record (or `model`, already holding its weights), with
    `pretrained_cfg` and a `data_config` of the record's input."""
    model = checkpoint_model(record, record) if model is None else model.eval()
    model.pretrained_cfg = {k: record[k] for k in PRETRAINED_CFG_KEYS if k in record}
    model.data_config = DataConfig((int(record["in_chans"]), *map(int, record["image_size"])),
                                   tuple(record["mean"]), tuple(record["std"]))
    return model


def create_model(name: str, num_classes: int | None = None, in_chans: int | None = None,
                 pretrained: bool | str | Path | None = None, **options: Any) -> nn.Module:
    """Build a registered model, with weights when `pretrained` is given.

    `pretrained`: True (the default of its first source: torchvision's where it publishes weights, else timm's),
    "torchvision" or "timm" (that source's default), a weights name ("IMAGENET1K_V2", "a1_in1k",
    "resnet50.a1_in1k", "timm:resnet50.a1_in1k"; `convolab models --pretrained` lists them), or a path (a
    convolab checkpoint or run folder, a .safetensors file or a folder from `convolab export --format
    safetensors`). A `num_classes` other than the weights' replaces the head (freshly initialized). Without
    `pretrained`, the plain builder (`convolab.models.create_model`).
    """
    if not isinstance(pretrained, Path) and not pretrained:  # None, False, 0, "": no weights
        return build_model(name, num_classes=num_classes, in_chans=in_chans, **options)
    cuts = {k: options.pop(k) for k in _CUTS if k in options}
    record, built = _record_and_model(name, pretrained)
    if options:
        raise ConfigError(f"the weights fix {record['model_name']}'s options ({record.get('model_options', {})}); "
                          f"{', '.join(sorted(options))} cannot be given with pretrained=")
    if in_chans is not None and in_chans != int(record["in_chans"]):
        raise ConfigError(f"the weights of {record['model_name']} take {record['in_chans']} input channels, "
                          f"not in_chans={in_chans}; convert the images instead")
    model = model_from_record(record, built)
    if num_classes is not None and num_classes != int(record["num_classes"]):
        model.reset_classifier(num_classes)
    if cuts.get("until") is not None:
        model = truncate(model, cuts["until"], num_classes)
    if cuts.get("features_only"):
        model = feature_maps(model, cuts.get("out_indices"))
    return model


__all__ = ["create_model", "is_weights_path", "model_from_record", "weights_record"]
