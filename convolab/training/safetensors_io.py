"""Weights without pickle: a folder of `model.safetensors` (the tensors) and `config.json` (what rebuilds
and feeds the model: name, options, classes, input size, mean, std), read back as a checkpoint record.

The record is also kept in the safetensors header's metadata, so that a lone `.safetensors` file
written here is complete; `config.json` beside it, where present and written here (it carries the format
marker), is what is read; another tool's or a run's config.json beside a lone file is passed over.

`check_record` checks the values of a record (this one, or a .pt checkpoint's) that shape the model's input
and output, so that an edited or damaged file is one line, not a traceback or silently wrong answers.
"""
from __future__ import annotations

import json
import math
import os
import re
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from .._paths import making
from ..errors import CheckpointError

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
FORMAT = "convolab-safetensors-1"
# The checkpoint record written to config.json (a convolab checkpoint's keys of the same names).
CONFIG_KEYS = ("model_name", "model_options", "num_classes", "in_chans", "classes", "image_size", "mean", "std",
               "preprocess", "crop_pct", "interpolation", "crop_mode", "data", "weights", "table", "config", "layout",
               "convolab_version")
GIVE = "give a folder written by `convolab export --format safetensors` (model.safetensors + config.json)"


def is_safetensors(path: str | Path) -> bool:
    """Whether `path` is a .safetensors file or a folder holding model.safetensors."""
    path = Path(path)
    return path.suffix == ".safetensors" or (path.is_dir() and (path / WEIGHTS_FILE).is_file())


def save_safetensors(state: dict[str, Any], weights: dict[str, torch.Tensor], folder: str | Path) -> list[Path]:
    """`folder`/model.safetensors and `folder`/config.json from a checkpoint record and its weights; the
    folders made for them are removed again when the writing fails (a full disk)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    config = {"format": FORMAT, **{k: state[k] for k in CONFIG_KEYS if k in state}}
    # (a record of no layout revision, written before they were recorded, stays without one: it may hold either
    # of two revisions, which reading it says; its writer, unrecorded, stays unnamed)
    text = json.dumps(config, indent=1)
    # safetensors refuses tensors that share memory or are not contiguous: give it plain copies
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}

    def write_weights(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata={"convolab": text})
        except Exception as err:  # (safetensors' writer, in Rust, raises its own error for what the system said)
            code = re.search(r"\(os error (\d+)\)", str(err))
            if code is None or isinstance(err, OSError):
                raise
            # e.g. SafetensorError("... No space left on device (os error 28)"): `atomic_write` knows an OSError
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from err

    with making(folder) as made:
        try:
            atomic_write(folder / WEIGHTS_FILE, write_weights)
            atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
        except BaseException:
            if made:  # (what a folder made here holds is this call's own; `making` removes the folders)
                for name in (WEIGHTS_FILE, CONFIG_FILE):
                    (folder / name).unlink(missing_ok=True)
            raise
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
    where: Path | None = None
    if config_path.is_file():
        config, where = _parse(config_path, config_path), config_path
        # another tool's or a run's config.json beside a lone file that holds its own record: not its config
        if not _marked(config) and "convolab" in metadata:
            where = None
    if where is None:
        if "convolab" not in metadata:
            raise CheckpointError(f"{weights_path} has no {CONFIG_FILE} beside it and no convolab record in its "
                                  f"header, so its model is unknown; {GIVE}")
        config, where = _parse(metadata["convolab"], weights_path), weights_path
    if not _marked(config):
        raise CheckpointError(f"{where} is not a convolab safetensors config (no '{FORMAT}' marker); {GIVE}")
    check_record(config, where, GIVE)
    return {**{k: v for k, v in config.items() if k != "format"}, "model": tensors, "source": str(path)}


def _parse(text: str | Path, where: Path) -> Any:
    """The JSON of `text`, or of the file it names (read here: a file not UTF-8 is a ValueError too)."""
    try:
        return json.loads(text.read_text(encoding="utf-8") if isinstance(text, Path) else text)
    except ValueError as err:  # (UnicodeDecodeError and JSONDecodeError)
        raise CheckpointError(f"{where} is not valid UTF-8 JSON ({str(err).splitlines()[0][:120]}); the file "
                              f"was edited or damaged; {GIVE}") from None


def _marked(config: Any) -> bool:
    return isinstance(config, dict) and config.get("format") == FORMAT


# ----- the values of a record --------------------------------------------------------------------------------
def _whole(value: object, least: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= least


def _finite(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict, str, int, float)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def record_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with the values of a checkpoint record (those it holds of num_classes, in_chans, classes,
    mean, std, layout, convolab_version, image_size), or None: the words after `FILE: `."""
    for key, least in (("num_classes", 0), ("in_chans", 1)):
        if key in state and not _whole(state[key], least):
            return f"its '{key}' is {_shown(state[key])}, not a whole number >= {least}"
    classes, outputs = state.get("classes"), state.get("num_classes")
    if "classes" in state and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)):
        return f"its 'classes' is {_shown(classes)}, not a list of class names"
    if classes is not None and outputs is not None and len(classes) != outputs:
        return f"its 'classes' lists {len(classes)} names for the model's {outputs} outputs ('num_classes')"
    channels = state.get("in_chans")
    for key in ("mean", "std"):
        if key not in state:
            continue
        value = state[key]
        count = f"{channels} finite number{'s' if channels != 1 else ''}" if channels is not None else "finite numbers"
        if not (isinstance(value, (list, tuple)) and all(map(_finite, value))
                and (len(value) == channels if channels is not None else len(value) > 0)):
            return f"its '{key}' is {_shown(value)}, not a list of {count}, one per input channel ('in_chans')"
        if key == "std" and not all(v > 0 for v in value):
            return f"its 'std' is {_shown(value)}, but every value must be > 0 (the inputs are divided by it)"
    if "layout" in state and not _whole(state["layout"], 1):
        return f"its 'layout' is {_shown(state['layout'])}, not a layout revision (a whole number >= 1)"
    if "convolab_version" in state and not (isinstance(state["convolab_version"], str) and state["convolab_version"]):
        return f"its 'convolab_version' is {_shown(state['convolab_version'])}, not a version such as \"0.1.0\""
    size = state.get("image_size")
    if "image_size" in state and not (isinstance(size, (list, tuple)) and len(size) == 2
                                      and all(_whole(s, 1) for s in size)):
        return f"its 'image_size' is {_shown(size)}, not [height, width] in pixels (two whole numbers >= 1)"
    return None


def check_record(state: dict[str, Any], where: str | Path, give: str) -> None:
    """A CheckpointError of one line naming `where` and the key, where the record's values do not fit (see
    `record_problem`); `give` says what to give instead."""
    problem = record_problem(state)
    if problem is not None:
        raise CheckpointError(f"{where}: {problem}; the file was edited or damaged; {give}")
