"""`create_model(name, pretrained=...)`: a registered model with published weights or weights from a file,
carrying their metadata (classes, input size, crop, mean, std) as `model.pretrained_cfg`."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models import DataConfig, get_entry
from ..models import create_model as build_model
from ..models._factory import check_cuts
from ..models._features import features_only as feature_maps
from ..models._features import truncate
from ..training.checkpoint import checkpoint_model, load_checkpoint, weights_mismatch
from ..training.safetensors_io import CONFIG_FILE, WEIGHTS_FILE, is_safetensors, read_tensors
from ..training.safetensors_io import FORMAT as SAFETENSORS_FORMAT
from ..training.transfer import WRAPPER_PREFIXES
from .load import fetch_pretrained
from .sources import WeightsError, choose_weights

# Options that cut a model after it is built, so they combine with any weights.
_CUTS = ("features_only", "out_indices", "until")
# Options that leave every weight meaning the same, so they combine with any weights (as timm's drop_rate does):
# dropout rates, and auxiliary heads added (fresh, as torchvision's googlenet does) or left out.
_WEIGHTS_NEUTRAL = ("drop_rate", "aux_drop_rate", "head_drop_rate", "aux_logits")
_UNSET = object()
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
    record.setdefault("source", str(path))  # (named in the errors that follow, rather than "the weights")
    if not record.get("model_name"):
        raise CheckpointError(f"{pretrained} holds a model of no registered name (given to Trainer(config, model=...)),"
                              " which create_model cannot build: build that model yourself and load its weights "
                              f"(model.load_state_dict(convolab.training.load_checkpoint({str(pretrained)!r})['model'])"
                              "), or continue its run with Trainer.resume(RUN, model=...)")
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
    """Build a registered model, with weights when `pretrained` is given; in train mode, as timm's and
    torchvision's (`model.eval()` before predicting).

    `pretrained`: True (the default of its first source: torchvision's where it publishes weights, else timm's),
    "torchvision" or "timm" (that source's default), a weights name ("IMAGENET1K_V2", "a1_in1k",
    "resnet50.a1_in1k", "timm:resnet50.a1_in1k"; `convolab models --pretrained` lists them), or a path (a
    convolab checkpoint or run folder, a folder from `convolab export --format safetensors`, or a file of a plain
    state dict: `safetensors.torch.save_file(model.state_dict(), ...)` or `torch.save(model.state_dict(), ...)`
    (whole, or under "state_dict" or "model", as timm reads them); it loads strictly into `name` built with
    the `num_classes`, `in_chans` and options given). A `num_classes` other than the weights'
    replaces the head (freshly initialized). The weights fix the model's other options, but for those that leave
    every weight meaning the same: the dropout rates (`drop_rate`, `aux_drop_rate`, `head_drop_rate`) and
    `aux_logits` (heads the weights lack are added freshly initialized, with torchvision's warning that they are
    not pretrained; heads they have are left out), besides `features_only`, `out_indices` and `until`. Without
    `pretrained`, the plain builder (`convolab.models.create_model`).
    """
    if not isinstance(pretrained, Path) and not pretrained:  # None, False, 0, "": no weights
        return build_model(name, num_classes=num_classes, in_chans=in_chans, **options)
    cuts = {k: options.pop(k) for k in _CUTS if k in options}
    check_cuts(cuts.get("features_only", False), cuts.get("out_indices"))
    tensors = _plain_state_dict(Path(pretrained).expanduser()) if is_weights_path(pretrained, name) else None
    if tensors is not None:
        model = _with_plain_weights(name, tensors, pretrained, num_classes, in_chans, options)
    else:
        model = _with_record(name, pretrained, num_classes, in_chans, options)
    if cuts.get("until") is not None:
        model = truncate(model, cuts["until"], num_classes)
    if cuts.get("features_only"):
        model = feature_maps(model, cuts.get("out_indices"))
    return model.train()


def _with_record(name: str, pretrained: bool | str | Path, num_classes: int | None, in_chans: int | None,
                 options: dict[str, Any]) -> nn.Module:
    """The model of published weights or of a convolab checkpoint or safetensors folder (see `create_model`)."""
    record, built = _record_and_model(name, pretrained)
    fixed = dict(record.get("model_options", {}))
    changed = {k: v for k, v in options.items() if fixed.get(k, _UNSET) != v}  # (the weights' own value: no change)
    refused = sorted(k for k in changed if k not in _WEIGHTS_NEUTRAL)
    if refused:
        raise ConfigError(f"the weights fix {record['model_name']}'s options ({fixed}); {', '.join(refused)} cannot "
                          "be given with pretrained= (only what leaves the weights meaning the same: "
                          f"{', '.join(_WEIGHTS_NEUTRAL)})")
    if in_chans is not None and in_chans != int(record["in_chans"]):
        raise ConfigError(f"the weights of {record['model_name']} take {record['in_chans']} input channels, "
                          f"not in_chans={in_chans}; convert the images instead")
    model = model_from_record(record, built)
    if changed:
        model = model_from_record(record, _rebuilt(record, model, {**fixed, **changed}))
    if num_classes is not None and num_classes != int(record["num_classes"]):
        model.reset_classifier(num_classes)
    return model


def _rebuilt(record: dict[str, Any], model: nn.Module, options: dict[str, Any]) -> nn.Module:
    """The record's model built with `options` (dropout rates, aux heads) holding `model`'s weights: the heads
    it lacks dropped, the heads it adds freshly initialized, as torchvision's googlenet(weights=...,
    aux_logits=True) does, with its warning."""
    fresh = build_model(str(record["model_name"]), num_classes=int(record["num_classes"]),
                        in_chans=int(record["in_chans"]), **options)
    weights, own = model.state_dict(), fresh.state_dict()
    fresh.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)
    added = sorted({k.split(".")[0] for k in own if k not in weights})
    if added:
        warnings.warn(f"auxiliary heads in the pretrained {record['model_name']} model are NOT pretrained "
                      f"({', '.join(added)}: {record.get('weights') or record.get('source')} holds none), so make "
                      "sure to train them", UserWarning, stacklevel=4)
    return fresh


def _plain_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of a file that holds a plain state dict and no convolab record, else None (a convolab file, or
    one `load_checkpoint` refuses itself): a safetensors file (or folder) saved with `safetensors.torch.save_file`,
    or a torch file (`torch.save(model.state_dict(), ...)`, read with weights_only=True), its state dict whole or
    under "state_dict" or "model", as timm's `load_checkpoint` reads them. A "module." before every name (a model
    saved inside DataParallel or DDP) is dropped, as timm does."""
    if is_safetensors(path):
        file = path / WEIGHTS_FILE if path.is_dir() else path
        beside = file.with_name(CONFIG_FILE)
        try:
            from safetensors import safe_open

            if beside.is_file() and json.loads(beside.read_text(encoding="utf-8")).get("format") == SAFETENSORS_FORMAT:
                return None
            with safe_open(str(file), framework="pt") as f:  # (the header only)
                if "convolab" in (f.metadata() or {}):
                    return None
        except Exception:  # noqa: BLE001  missing, damaged or foreign: load_checkpoint says which, in one line
            return None
        return _unwrapped(read_tensors(file)[0])
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # (torch's notes on a foreign file: load_checkpoint's line says it all)
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  not a torch file, or one of code (TorchScript): load_checkpoint says which
        return None
    if not isinstance(state, dict) or "format" in state:  # (a convolab checkpoint is marked so)
        return None
    for key in ("state_dict", "model"):
        if _all_tensors(state.get(key)):
            return _unwrapped(state[key])
    return _unwrapped(state) if _all_tensors(state) else None


def _all_tensors(tensors: Any) -> bool:
    return isinstance(tensors, dict) and bool(tensors) and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in tensors.items())


def _unwrapped(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The names without the prefix a wrapper put before every one: "module." (DataParallel, DDP), "_orig_mod."
    (torch.compile), or both, in either order."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if tensors and all(k.startswith(prefix) for k in tensors):
                tensors, changed = {k[len(prefix):]: v for k, v in tensors.items()}, True
    return tensors


def _with_plain_weights(name: str, tensors: dict[str, torch.Tensor], pretrained: str | Path,
                        num_classes: int | None, in_chans: int | None, options: dict[str, Any]) -> nn.Module:
    """`name` built as given, holding a plain state dict's tensors (strictly: each name and shape)."""
    model = build_model(name, num_classes=num_classes, in_chans=in_chans, **options)
    problem = weights_mismatch(model, tensors)
    if problem is not None:
        given = {k: v for k, v in {"num_classes": num_classes, "in_chans": in_chans, **options}.items()
                 if v is not None}
        raise CheckpointError(f"{pretrained} holds a plain state dict (no convolab record) that does not fit "
                              f"{get_entry(name).name}({', '.join(f'{k}={v!r}' for k, v in given.items())}): "
                              f"{problem}; give the num_classes, in_chans and options it was built with")
    model.load_state_dict(tensors)
    model.pretrained_cfg = {"weights": str(pretrained)}
    return model


__all__ = ["create_model", "is_weights_path", "model_from_record", "weights_record"]
