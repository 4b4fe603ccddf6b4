"""Checkpoints: one dict of tensors, numbers and strings, written atomically, read with weights_only."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from ..errors import CheckpointError

FORMAT = "convolab-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a convolab checkpoint; anything else gets a CheckpointError saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path} is a folder without best.pt or last.pt; "
                                  "give a checkpoint file or a run folder")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or not made by "
                              f"torch.save: {first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a convolab checkpoint (no '{FORMAT}' marker); "
                              "give a last.pt or best.pt written by `convolab train`")
    return state


def served_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's test metrics were measured with: the EMA of a run trained with
    `--ema` (which `best.pt` was chosen on), else the trained weights. What evaluate, predict,
    features, export and --init-from use."""
    return state["ema"] if "ema" in state else state["model"]
