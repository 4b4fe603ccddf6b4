"""Atomic file writes: a reader never sees a half-written checkpoint, report or cache."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ConvolabError, DiskFullError

NEARLY_FULL = 1 << 20  # bytes: a write that fails with less than this left free failed for want of space
REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)  # the folder cannot be written (a read-only mount, permissions)


class RefusedWrite(OSError):
    """The system refused a write (a read-only file system, permissions, a folder gone): the system's OSError
    (errno, strerror), for callers that name their own argument, and `line`, the one line for those that do not
    (a training run: its engine adds what to resume)."""

    def __init__(self, err: OSError, line: str):
        super().__init__(err.errno, err.strerror, err.filename)
        self.line = line


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it onto `path`."""
    path = Path(path)
    existed = path.exists()
    try:  # (the folder may have become read-only, or been removed, since the command checked it)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if disk_full(err):
            raise DiskFullError(no_space_line(path, None, existed)) from err
        if err.errno in (*REFUSED, errno.ENOENT):
            raise RefusedWrite(err, not_writable_line(path, err, existed)) from err
        raise
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should read like any other file
        os.replace(tmp, path)
    except BaseException as err:
        ours = isinstance(err, Exception) and not isinstance(err, ConvolabError)
        free = _free_space(path.parent) if ours else None
        with contextlib.suppress(OSError):  # (a folder turned read-only keeps the temporary: removed on --resume)
            Path(tmp).unlink(missing_ok=True)
        # torch.save on a full disk fails with RuntimeError("... unexpected pos ..."), not ENOSPC: the free
        # space, measured before the partial file is removed, tells
        if ours and (disk_full(err) or free is not None and free < NEARLY_FULL):
            raise DiskFullError(no_space_line(path, free, existed)) from err
        if ours and isinstance(err, OSError) and err.errno in REFUSED and err.filename in (None, tmp, str(path)):
            raise RefusedWrite(err, not_writable_line(path, err, existed)) from err
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


def _free_space(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def not_writable_line(path: Path, err: OSError, existed: bool = False) -> str:
    why = {errno.EROFS: "its file system is read-only", errno.ENOENT: "the folder no longer exists"}.get(
        err.errno, "permission denied")
    kept = f"; the previous {path.name} is unchanged" if existed else ""
    return (f"{path.parent} cannot be written ({why}) while writing {path.name}: make it writable, or write "
            f"elsewhere{kept}")


def no_space_line(path: Path, free: int | None = None, existed: bool = False) -> str:
    left = f" ({free / 2**20:.1f} MiB free)" if free is not None else ""
    kept = f"; the previous {path.name} is unchanged" if existed else ""
    return (f"no space left on the disk of {path.parent}{left} while writing {path.name}: free some space, or "
            f"write elsewhere{kept}")
