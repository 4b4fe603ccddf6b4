"""Weights without pickle: a folder of `model.safetensors` (the tensors) and `config.json` (what rebuilds
and feeds the model: name, options, classes, input size, mean, std), read back as a checkpoint record.

The record is also kept in the safetensors header's metadata, so that a lone `.safetensors` file
written here is complete; `config.json` beside it, where present, is what is read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from ..errors import CheckpointError

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
FORMAT = "convolab-safetensors-1"
# The checkpoint record written to config.json (a convolab checkpoint's keys of the same names).
CONFIG_KEYS = ("model_name", "model_options", "num_classes", "in_chans", "classes", "image_size", "mean", "std",
               "preprocess", "crop_pct", "interpolation", "data", "weights", "table", "config")
GIVE = "give a folder written by `convolab export --format safetensors` (model.safetensors + config.json)"


def is_safetensors(path: str | Path) -> bool:
    """Whether `path` is a .safetensors file or a folder holding model.safetensors."""
    path = Path(path)
    return path.suffix == ".safetensors" or (path.is_dir() and (path / WEIGHTS_FILE).is_file())


def save_safetensors(state: dict[str, Any], weights: dict[str, torch.Tensor], folder: str | Path) -> list[Path]:
    """`folder`/model.safetensors and `folder`/config.json from a checkpoint record and its weights."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, **{k: state[k] for k in CONFIG_KEYS if k in state}}
    text = json.dumps(config, indent=1)
    # safetensors refuses tensors that share memory or are not contiguous: give it plain copies
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"convolab": text}))
    atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text + "\n"))
    return [folder / WEIGHTS_FILE, folder / CONFIG_FILE]


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header metadata of a .safetensors file; a damaged file is one CheckpointError line."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist; {GIVE}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:  # noqa: BLE001  safetensors raises its own SafetensorError (and OSError)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path} is not a readable safetensors file ({first}): truncated or not "
                              f"safetensors; delete it and write it again, or {GIVE}") from None


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """A checkpoint record (`load_checkpoint` adds its format marker) from a safetensors folder or file, no
    pickle involved."""
    path = Path(path)
    weights_path = path / WEIGHTS_FILE if path.is_dir() else path
    tensors, metadata = read_tensors(weights_path)
    config_path = weights_path.with_name(CONFIG_FILE)
    if config_path.is_file():
        text, where = config_path.read_text(), config_path
    elif "convolab" in metadata:
        text, where = metadata["convolab"], weights_path
    else:
        raise CheckpointError(f"{weights_path} has no {CONFIG_FILE} beside it and no convolab record in its header, "
                              f"so its model is unknown; {GIVE}")
    try:
        config = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"{where} is not valid JSON ({err}); {GIVE}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a convolab safetensors config (no '{FORMAT}' marker); {GIVE}")
    return {**{k: v for k, v in config.items() if k != "format"}, "model": tensors, "source": str(path)}
