"""Where an export may be written, checked before any work: never onto the checkpoint it reads, a file a run
folder keeps (its config.json, checkpoints, metrics) or a safetensors folder's own files, and never where it
cannot be written. Each refusal is one ConfigError line naming --out and what to give instead."""
from __future__ import annotations

from pathlib import Path

from .._paths import check_usable, same_path, writable_output
from ..errors import ConfigError
from ..training.checkpoint import is_torchscript
from ..training.rundir import RUN_WRITES, run_files
from ..training.safetensors_io import CONFIG_FILE, WEIGHTS_FILE

SAFETENSORS_FILES = (WEIGHTS_FILE, CONFIG_FILE)


def kept_files(folder: Path) -> tuple[str, tuple[str, ...]] | None:
    """What `folder` keeps that an export must not replace: (what the folder is, the names of its files),
    or None for a folder that holds neither a run nor a safetensors export."""
    found, safetensors = run_files(folder), (folder / WEIGHTS_FILE).is_file()
    names = (RUN_WRITES if found else ()) + (SAFETENSORS_FILES if safetensors else ())
    if not names:
        return None
    return (f"the run in {folder} ({', '.join(found)})" if found else f"the safetensors export in {folder}"), names


def _same(a: Path, b: str | Path | None) -> bool:
    """Whether `a` and `b` name the same existing file or folder, however each is spelled."""
    return b is not None and same_path(str(a), str(b))


def _instead(what: str, instead: str | Path | None) -> str:
    return f"give another {what}" + (f", e.g. {instead}" if instead is not None else "")


def check_file_output(path: str | Path, source: str | Path | None = None, instead: str | Path | None = None,
                      example: str = "model.onnx", writer: str = "the export", create_parents: bool = False) -> Path:
    """`path` checked as the file of an ONNX or TorchScript export, before any work: not the checkpoint
    `source` being exported, not a file that a run folder (`RUN_WRITES`) or a safetensors folder keeps, not a
    folder nor anything else that is not a regular file (a device, a FIFO), and in a folder that exists and can
    be written (`writable_output`; `example` names a file for a folder given), or, with `create_parents`, that
    can be made (by the writer: nothing is made here). `instead`: a file to suggest in the line; `writer`: what
    writes the file, as the line names it."""
    path = Path(path)
    check_usable(path, "`path`", "file")  # (a name too long: every check below would raise it)
    if not path.is_dir() and _same(path, source):
        raise ConfigError(f"`path` {path} is the checkpoint being read: {writer} would replace it; "
                          + _instead("file", instead))
    kept = kept_files(path.parent)
    if kept is not None and path.name in kept[1]:
        raise ConfigError(f"`path` {path} is the {path.name} of {kept[0]}, which {writer} would replace; "
                          + _instead("file", instead))
    if path.exists() and not path.is_file() and not path.is_dir():  # (os.access lets root replace /dev/null)
        raise ConfigError(f"`path` {path} exists and is not a regular file (a device, a FIFO or a socket), which "
                          f"{writer} would replace; " + _instead("file", instead))
    return writable_output(path, "`path`", "file", create_parents, create=False, example=example)


def check_folder_output(folder: str | Path, source: str | Path | None = None,
                        instead: str | Path | None = None) -> Path:
    """`folder` checked as the output of a safetensors export (model.safetensors + config.json), before any
    work: not a file, not a folder that holds a run (its config.json would be replaced), not the folder
    being exported, no foreign config.json in it, and creatable or writable (`writable_output`; nothing is
    made here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"`folder` {folder} is a file; give a folder for model.safetensors and config.json")
    found = run_files(folder)
    if found == [CONFIG_FILE]:  # a run's that has no checkpoint yet, or another tool's
        raise ConfigError(f"`folder` {folder} holds a {CONFIG_FILE} that no safetensors export wrote, which the "
                          "export would replace; " + _instead("folder", instead))
    if found:
        raise ConfigError(f"`folder` {folder} holds a run ({', '.join(found)}): the safetensors {CONFIG_FILE} would "
                          "replace the run's; " + _instead("folder", instead))
    if _same(folder, source):
        raise ConfigError(f"`folder` {folder} is the safetensors folder being exported; " + _instead("folder", instead))
    return writable_output(folder, "`folder`", "folder", create=False)


EXPORT_SUFFIXES = (".onnx", ".pt2")  # (and a TorchScript file, known by its archive whatever its name)


def check_replaced_export(path: str | Path, writer: str = "the export") -> None:
    """An existing file at `path` is replaced only where it is an export itself (ONNX, a torch.export program, or
    TorchScript), exported again (never a photo of the data or a user's checkpoint)."""
    path = Path(path)
    if not path.is_file() or path.name.lower().endswith(EXPORT_SUFFIXES) or is_torchscript(path):
        return
    raise ConfigError(f"`path` {path} exists and is no export (ONNX, TorchScript or .pt2) that {writer} would "
                      "replace: give a new file, or remove it first")


__all__ = ["EXPORT_SUFFIXES", "SAFETENSORS_FILES", "check_file_output", "check_folder_output", "check_replaced_export",
           "kept_files", "run_files"]
