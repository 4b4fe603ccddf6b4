"""Weights without pickle: a checkpoint (or published weights) as `model.safetensors` + `config.json`,
read back and checked to give the checkpoint's own outputs before it is put in place and reported written."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._atomic import no_space_line, remove_dead_temporaries, restored_on_failure, temporary_prefix
from .._paths import making, user_path
from ..errors import ConvolabError, DiskFullError
from ..pretrained import load_safetensors, save_safetensors
from ..training.checkpoint import checkpoint_model, load_checkpoint, served_weights
from ..training.safetensors_io import CONFIG_FILE, WEIGHTS_FILE
from .exporters import ExportError, reference_outputs, sigterm_as_interrupt
from .outputs import check_folder_output


@dataclass(frozen=True)
class SafetensorsResult:
    """The safetensors export written: its two files, the model's name, the tensor count and the read-back check."""

    files: list[Path]
    model_name: str
    tensors: int
    max_abs_diff: float  # the read-back model against the checkpoint's, on random inputs (0.0: the same bits)


@torch.no_grad()
def export_safetensors(checkpoint: str | Path | dict[str, Any], folder: str | Path) -> SafetensorsResult:
    """Write `folder`/model.safetensors and `folder`/config.json (model name, options, classes, input size,
    mean, std) of a checkpoint, run folder or record; `create_model(name, pretrained=folder)` and every
    verb read it back. `folder` may not hold a run (its config.json would be replaced) nor be the safetensors
    folder being exported (`outputs.check_folder_output`); one that cannot be written is one line. The files
    are written into a temporary folder inside `folder` and moved into place only once read back to give the
    checkpoint's outputs: a failed export leaves `folder` as it was (and does not make it)."""
    folder = check_folder_output(user_path(folder), None if isinstance(checkpoint, dict) else checkpoint)
    ckpt = load_checkpoint(checkpoint)
    label = str(ckpt.get("source", "the weights")) if isinstance(checkpoint, dict) else checkpoint
    model = checkpoint_model(ckpt, label)
    x = torch.randn(2, int(ckpt["in_chans"]), *map(int, ckpt["image_size"]), generator=torch.Generator().manual_seed(0))
    expected = reference_outputs(model, [x], f"the model of {label}")[0]  # before anything is written
    try:
        with sigterm_as_interrupt(), making(folder):  # (the folders it makes, removed again on failure)
            for name in (folder.name, CONFIG_FILE, WEIGHTS_FILE):  # staging folders and files kept aside of exports
                remove_dead_temporaries(folder, name)  # killed mid-write
            staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(folder.name), suffix=".tmp", dir=folder))
            try:
                save_safetensors(ckpt, served_weights(ckpt, label), staging)
                back = load_safetensors(staging)
                got = checkpoint_model({**ckpt, **back, "source": str(folder)}, folder)(x).float()
                diff = float((expected - got).abs().max())
                if not torch.equal(expected, got):  # (NaN read back differs too: `expected` is finite)
                    raise ExportError(f"{folder}: the weights read back give outputs {diff:.3g} away from the "
                                      "checkpoint's; nothing was written")
                with restored_on_failure([folder / CONFIG_FILE, folder / WEIGHTS_FILE]):  # both, or neither
                    for name in (CONFIG_FILE, WEIGHTS_FILE):
                        os.replace(staging / name, folder / name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException as err:
        if isinstance(err, DiskFullError):  # its own line, but naming --out rather than the temporary folder
            written = folder / (CONFIG_FILE if f"writing {CONFIG_FILE}" in str(err) else WEIGHTS_FILE)
            raise DiskFullError(no_space_line(written, existed=written.exists())) from None
        if isinstance(err, OSError) and not isinstance(err, ConvolabError):
            raise ExportError(f"`folder` {folder} cannot be written ({err.strerror or err}); choose another "
                              "folder") from None
        raise
    return SafetensorsResult([folder / WEIGHTS_FILE, folder / CONFIG_FILE], str(ckpt["model_name"]),
                             len(back["model"]), diff)


__all__ = ["SafetensorsResult", "export_safetensors"]
