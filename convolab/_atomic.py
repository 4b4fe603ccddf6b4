"""Atomic file writes: a reader never sees a half-written checkpoint, report or cache."""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ConvolabError, DiskFullError

NEARLY_FULL = 1 << 20  # bytes: a write that fails with less than this left free failed for want of space


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it onto `path`."""
    path = Path(path)
    existed = path.exists()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should read like any other file
        os.replace(tmp, path)
    except BaseException as err:
        ours = isinstance(err, Exception) and not isinstance(err, ConvolabError)
        free = shutil.disk_usage(path.parent).free if ours else None
        Path(tmp).unlink(missing_ok=True)
        # torch.save on a full disk fails with RuntimeError("... unexpected pos ..."), not ENOSPC: the free
        # space, measured before the partial file is removed, tells
        if free is not None and (disk_full(err) or free < NEARLY_FULL):
            raise DiskFullError(no_space_line(path, free, existed)) from err
        raise


TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_write names its temporary files (mkstemp's)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes into `folder` left when their process was killed mid-write
    (SIGKILL, a crash of the machine: nothing runs to remove them), and return them. Call it where no other
    process writes into `folder`."""
    stale = [p for p in Path(folder).glob(".*.tmp") if TEMPORARY.fullmatch(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def no_space_line(path: Path, free: int | None = None, existed: bool = False) -> str:
    left = f" ({free / 2**20:.1f} MiB free)" if free is not None else ""
    kept = f"; the previous {path.name} is unchanged" if existed else ""
    return (f"no space left on the disk of {path.parent}{left} while writing {path.name}: free some space, or "
            f"write elsewhere{kept}")
