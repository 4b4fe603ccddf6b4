"""`--format pt2`: the model captured by `torch.export` and saved with `torch.export.save`, PyTorch's successor
of a TorchScript file (torch 2.14 deprecates TorchScript and says it is unsupported on Python 3.14 and later).
Batch norm folded, checked against PyTorch eager before it is kept, the metadata in the archive's
`extra/convolab.json`, read back by `torch.export.load(...).module()` with no convolab needed.
"""
from __future__ import annotations

import io
import json
import logging
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from .._paths import user_path
from .exporters import (
    RTOL,
    TOLERANCE,
    TORCHSCRIPT_META,
    ExportMeta,
    ExportResult,
    _differences,
    _write_checked,
    meta_from_extra,
    prepare_export,
)
from .onnx_graph import ExportError, capture, first_line

PROGRAM_META = TORCHSCRIPT_META  # "convolab.json": the archive's extra file of metadata, as a TorchScript file's
PROGRAM_SUFFIX = ".pt2"  # torch's name for a torch.export.save archive


def export_program(model: nn.Module, path: str | Path, input_size: tuple[int, int, int], batch_size: int = 1,
                   dynamic_batch: bool = False, meta: ExportMeta | None = None, fold: bool = True,
                   tolerance: float = TOLERANCE, rtol: float = RTOL, what: str = "the model") -> ExportResult:
    """Write `model` captured by `torch.export` as a `.pt2` archive (`torch.export.save`), checked by loading it
    back with `torch.export.load` and running it against PyTorch eager; `meta` as for `export_torchscript`, in the
    archive's `extra/convolab.json`. A fixed batch (`dynamic_batch` False) is the only size the program takes, as
    an ONNX model of a fixed batch; a dynamic one, up to MAX_BATCH images, is captured on the 3 images of the check
    (torch.export takes a batch of 1 for a constant) and checked at 1 and 3. One line where torch.export cannot
    capture the model."""
    path = user_path(path)
    ready = prepare_export(model, path, "model.pt2", input_size, batch_size, dynamic_batch, meta, fold, what)
    extra = {PROGRAM_META: json.dumps(ready.meta.to_strings() if ready.meta is not None else {})}

    def write(tmp: str) -> torch.Tensor:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = capture(ready.model, ready.inputs[-1], dynamic_batch, "export it as TorchScript or ONNX instead")
            # Saved to memory and written from Python, as a TorchScript file is (a full disk is then an OSError).
            buffer = io.BytesIO()
            torch.export.save(program, buffer, extra_files=extra)
            Path(tmp).write_bytes(buffer.getvalue())
            # (read from memory: from a path, torch warns of any name not ending .pt2, as the temporary's)
            loaded = torch.export.load(io.BytesIO(Path(tmp).read_bytes())).module()
        return _differences(ready.expected, loaded, ready.inputs)

    diff, rel = _write_checked(Path(path), "pt2", write, tolerance, rtol, ready.folded)
    return ExportResult(Path(path), "pt2", diff, ready.batch_sizes, ready.folded, rel)


def read_program_meta(path: str | Path) -> tuple[nn.Module, ExportMeta, int | None]:
    """A `.pt2` archive written by `export_program`: its program as a module, its metadata, and the one batch size
    it takes (None: any). One line (ExportError) for a missing file, or one torch.export.load cannot read."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"torch.export program {path} does not exist")
    extra = {PROGRAM_META: ""}
    torch_log = logging.getLogger("torch.export")  # (which logs the traceback of a file it cannot read, then raises)
    level = torch_log.level
    try:
        if not zipfile.is_zipfile(path):
            raise ValueError("not a zip archive")
        torch_log.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(path.read_bytes()), extra_files=extra)
    except Exception as err:  # noqa: BLE001  a damaged or foreign file fails in torch's reader in many ways
        why = first_line(err)[:120]
        why = "" if "check the warnings above" in why else f" ({why})"  # (torch's pointer to the log it wrote)
        raise ExportError(f"{path} is not a readable torch.export program{why}: not the archive "
                          "`convolab export --format pt2` writes (truncated, corrupt or another kind of file); export "
                          "the run again") from None
    finally:
        torch_log.setLevel(level)
    meta = meta_from_extra(extra[PROGRAM_META], path, "pt2")
    user_inputs = [node for node in program.graph.nodes if node.op == "placeholder"
                   and node.name in program.graph_signature.user_inputs]
    shape = user_inputs[0].meta.get("val").shape if user_inputs and "val" in user_inputs[0].meta else None
    fixed = int(shape[0]) if shape is not None and isinstance(shape[0], int) else None
    return program.module(), meta, fixed
