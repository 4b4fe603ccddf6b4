"""Weights without pickle: a checkpoint (or published weights) as `model.safetensors` + `config.json`,
read back and checked to give the checkpoint's own outputs before it is reported written."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConvolabError
from ..pretrained import load_safetensors, save_safetensors
from ..training.checkpoint import checkpoint_model, load_checkpoint, served_weights
from .exporters import ExportError
from .outputs import check_folder_output


@dataclass(frozen=True)
class SafetensorsResult:
    files: list[Path]
    model_name: str
    tensors: int
    max_abs_diff: float  # the read-back model against the checkpoint's, on random inputs (0.0: the same bits)


@torch.no_grad()
def export_safetensors(checkpoint: str | Path | dict[str, Any], folder: str | Path) -> SafetensorsResult:
    """Write `folder`/model.safetensors and `folder`/config.json (model name, options, classes, input size,
    mean, std) of a checkpoint, run folder or record; `create_model(name, pretrained=folder)` and every
    verb read it back. `folder` may not hold a run (its config.json would be replaced) nor be the safetensors
    folder being exported (`outputs.check_folder_output`); one that cannot be written is one line."""
    folder = check_folder_output(folder, None if isinstance(checkpoint, dict) else checkpoint)
    ckpt = load_checkpoint(checkpoint)
    label = str(ckpt.get("source", "the weights")) if isinstance(checkpoint, dict) else checkpoint
    model = checkpoint_model(ckpt, label)
    try:
        files = save_safetensors(ckpt, served_weights(ckpt, label), folder)
    except OSError as err:
        if isinstance(err, ConvolabError):  # a full disk: its own line, what was there before unchanged
            raise
        raise ExportError(f"--out {folder} cannot be written ({err.strerror or err}); choose another "
                          "folder") from None
    back = load_safetensors(folder)
    again = checkpoint_model({**ckpt, **back}, folder)
    x = torch.randn(2, int(ckpt["in_chans"]), *map(int, ckpt["image_size"]), generator=torch.Generator().manual_seed(0))
    diff = float((model(x) - again(x)).abs().max())
    if diff != 0.0:
        raise ExportError(f"{folder}: the weights read back give outputs {diff:.3g} away from the checkpoint's")
    return SafetensorsResult(files, str(ckpt["model_name"]), len(back["model"]), diff)


__all__ = ["SafetensorsResult", "export_safetensors"]
