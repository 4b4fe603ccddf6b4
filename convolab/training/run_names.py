"""The default names of the folders a command writes into: runs/MODEL-DATA, compare-DATA, lr-find-MODEL-DATA...,
the first of NAME, NAME-2, NAME-3... that is free."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .config import TrainConfig

STEM_BYTES = 150  # of a data name in a default folder's name: with a model's name and a -N, under 255 bytes


def next_free_dir(stem: str, parent: str | Path = "runs", create: bool = False) -> Path:
    """parent/stem, or stem-2, stem-3... beside the ones that exist. With `create`, the folder is made here, by
    an exclusive mkdir: of two commands started together in one folder, each takes a folder of its own (where it
    cannot be made, it is returned unmade, for the caller's check to say why in one line)."""
    path, n = Path(parent) / stem, 2
    while True:
        if not path.exists() and not path.is_symlink():
            if not create:
                return path
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:  # taken meanwhile, by another command
                pass
            except OSError:
                return path
        path, n = Path(parent) / f"{stem}-{n}", n + 1


def take_default_dir(path: str | Path, stem: str) -> Path:
    """The default folder `path`, named by `next_free_dir(stem, path.parent)` when it did not exist, made here by an
    exclusive mkdir; when a command started beside this one made it first, the next free name, made (where it cannot
    be made, it is returned unmade, for the caller's check to say why in one line)."""
    path = Path(path)
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return next_free_dir(stem, path.parent, create=True)
    except OSError:
        pass
    return path


def data_stem(data: str) -> str:
    """A short name for a data source: `cifar10-jpg` for ../shared/data/cifar10-jpg.tar.gz; its first STEM_BYTES bytes
    (of UTF-8), so that a default folder `lr-find-MODEL-DATA-2` fits the 255 a file system allows (a data folder
    of 83 Chinese characters, 249 bytes, was refused as a name too long for an --output the user never gave)."""
    stem = Path(data).name.split(".")[0]
    encoded = stem.encode("utf-8", "surrogateescape")
    return stem if len(encoded) <= STEM_BYTES else encoded[:STEM_BYTES].decode("utf-8", "ignore")


def default_run_dir(config: TrainConfig, create: bool = False) -> Path:
    """runs/MODEL-DATA, or the first of runs/MODEL-DATA-2, -3... that does not exist (made, with `create`)."""
    return next_free_dir(f"{config.model}-{data_stem(config.data)}", create=create)


def forget_unfitted(folder: Path, claim: Any) -> None:
    """A default run folder (runs/MODEL-DATA) whose Trainer went unfitted: its claim released, and the folder removed
    if nothing was written there (a notebook cell run again made runs/MODEL-DATA-2, -3... of nothing)."""
    if claim is not None:
        claim.release()
    with contextlib.suppress(OSError):
        folder.rmdir()  # (an empty folder only: another Trainer's share of it keeps its lock file there)


__all__ = ["STEM_BYTES", "data_stem", "default_run_dir", "forget_unfitted", "next_free_dir", "take_default_dir"]
