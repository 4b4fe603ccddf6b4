"""Output locations, checked before any work is done: one line that names the argument, the path and what to do.

Every verb that writes (train, evaluate, features, compare, report, draw) checks its output here, so the
wording is in one place. A folder output is created with its parents (as `mkdir -p`); a file output's
folder must exist (a typo in the folder is refused, not made).
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._atomic import disk_full, temporary_prefix
from .errors import ConfigError, ConvolabError, DiskFullError


def user_path(path: str | os.PathLike) -> Path:
    """A path a caller gave, `~` expanded as a shell expands it: Python has no shell to do it (the CLI expands its
    own options), and "~/runs" is a folder "~" nowhere."""
    return Path(os.path.expanduser(os.fspath(path)))


def _existing_ancestor(path: Path) -> Path:
    """The nearest of `path` and its parents that exists (absolute)."""
    path = path.absolute()
    return next((p for p in (path, *path.parents) if p.exists()), Path(path.anchor))


def writable_output(path: str | os.PathLike, argument: str, kind: str = "folder", create_parents: bool | None = None,
                    create: bool = True, example: str = "output") -> Path:
    """`path` checked as the output `argument` names, before any work: kind "folder" (created with its parents
    unless create=False, which leaves the making to the writer) or "file" (its folder must exist unless
    create_parents; `example` names a file for the message). A ConfigError of one line where it is of the
    wrong kind, lies under a file, has no folder, or cannot be written to; nothing is written either way."""
    path = Path(path)
    create_parents = kind == "folder" if create_parents is None else create_parents
    what = "folder" if kind == "folder" else "file"
    check_usable(path, argument, what)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ConfigError(f"{argument} {path} is a file; give a folder for the output (it will be created)")
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{argument} {path} is a directory; give a file name such as {path / example}")
    folder = path if kind == "folder" else path.parent
    existing = folder if folder.is_dir() else _existing_ancestor(folder)
    if not existing.is_dir():
        raise ConfigError(f"{argument} {path} lies under {existing}, which is a file; choose another {what}")
    if existing != folder and not create_parents:
        raise ConfigError(f"the folder of {argument} {path} does not exist; create {folder} first or choose another "
                          f"{what}")
    if not os.access(existing, os.W_OK | os.X_OK):  # a file is written beside its name, then renamed onto it
        why = "a read-only file system" if _read_only(existing) else "permission denied"
        raise ConfigError(f"{argument} {path} is not writable ({why} in {existing}); choose another {what}")
    if create and existing != folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{argument} {path} cannot be created ({err.strerror}); choose another {what}") from None
    return path


def check_usable(path: str | os.PathLike, argument: str, what: str = "folder") -> None:
    """One line where no file can be at `path` at all (a name too long, a loop of links), which any check of it
    would raise as a traceback (Path.exists and is_dir let those errors through)."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:77]}..."
            raise ConfigError(f"{argument} {shown} cannot be used ({err.strerror}); choose another {what}") from None


def _read_only(folder: Path) -> bool:
    """Whether `folder` is on a file system mounted read-only (which no change of permissions mends)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # (Windows: no statvfs)
        return False


def probe_output(path: str | Path, argument: str, kind: str = "folder") -> None:
    """Really write where `path` goes, before any work, after `writable_output` (whose permission check a root
    user always passes, even on /sys or a read-only mount): make its folder and a scratch file in it, then
    remove what was made. A ConfigError of one line where the system refuses."""
    path = Path(path)
    folder = path if kind == "folder" else path.parent
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # removed again, deepest first
    try:
        for attempt in range(3):  # (another command probing the same new folder may remove it in between)
            folder.mkdir(parents=True, exist_ok=True)
            try:  # (its writer named: one a kill leaves now is removed later, as atomic_write's temporaries are)
                fd, scratch = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=folder)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            os.write(fd, b"\0")  # (a full disk still makes an empty file: its first byte is refused)
        finally:
            os.close(fd)
            os.unlink(scratch)
    except OSError as err:
        if disk_full(err):
            raise DiskFullError(f"{argument} {path}: no space left on its disk ({err.strerror}); free some space, or "
                                f"choose another {'folder' if kind == 'folder' else 'file'}") from None
        raise ConfigError(f"{argument} {path} cannot be written ({err.strerror or err}); choose another "
                          f"{'folder' if kind == 'folder' else 'file'}") from None
    finally:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()


@contextlib.contextmanager
def written(path: str | Path, argument: str, kind: str = "folder"):
    """Around the final write of `path`: an OSError (a disk gone read-only, a folder removed meanwhile) is one
    ConfigError line; a full disk keeps its own line (DiskFullError)."""
    try:
        yield
    except OSError as err:
        if isinstance(err, ConvolabError):
            raise
        raise ConfigError(f"{argument} {path} cannot be written ({err.strerror or err}); choose another "
                          f"{'folder' if kind == 'folder' else 'file'}") from None


@contextlib.contextmanager
def making(folder: Path) -> Iterator[list[Path]]:
    """`folder` made, with its missing parents (the list of those made, deepest first); a failure inside
    removes them again where empty, so that a failed write leaves no empty folder behind."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield made
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


__all__ = ["lies_within", "making", "probe_output", "user_path", "writable_output", "written"]


def same_path(a: object, b: object) -> bool:
    """Whether two values name the same existing file or folder (however each is spelled; a str or a Path)."""
    if not (isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike))):
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def lies_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (existing or not) is the existing `folder` or lies inside it, however each is spelled:
    `path`'s folders are compared with `folder` as files (device and inode), so that a link, or `Photos` and
    `photos` on a file system blind to case (macOS's, Windows'), count as the same folder."""
    try:
        inside = os.stat(folder)
    except (OSError, ValueError):
        return False
    target = Path(path).expanduser().absolute().resolve()  # (`..` and links undone first: `data/../out` is not in data)
    for candidate in (target, *target.parents):
        with contextlib.suppress(OSError, ValueError):
            if os.path.samestat(os.stat(candidate), inside):
                return True
    return False


def user_cache(variable: str, *parts: str) -> str:
    """A cache folder of convolab's: the environment's `variable` where it is set, else convolab/PARTS under
    $XDG_CACHE_HOME (an absolute path), else under ~/.cache; read at each call, so that a variable set after
    the import counts, and an empty one counts as unset (as XDG's do)."""
    given = os.environ.get(variable)
    if given:
        return given
    xdg = os.environ.get("XDG_CACHE_HOME") or ""
    return os.path.join(xdg if os.path.isabs(xdg) else "~/.cache", "convolab", *parts)
