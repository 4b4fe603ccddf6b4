"""Atomic file writes: a reader never sees a half-written checkpoint, report or cache."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import ConvolabError, DiskFullError, NotWritableError

try:
    import fcntl
    import resource
except ImportError:  # (Windows: no flock, `one_at_a_time` letting every process through; no file-size limit)
    fcntl = resource = None  # type: ignore[assignment]

NEARLY_FULL = 1 << 20  # bytes: a write that fails with less than this left free failed for want of space
REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)  # the folder or file cannot be written (a read-only
# mount, permissions, a file-size limit: `ulimit -f`, or the largest file the file system keeps)


class RefusedWrite(OSError):
    """The system refused a write (a read-only file system, permissions, a folder gone): the system's OSError
    (errno, strerror), for callers that name their own argument, and `line`, the one line for those that do not
    (a training run: its engine adds what to resume)."""

    def __init__(self, err: OSError, line: str, what: str | None = None):
        super().__init__(err.errno, err.strerror, err.filename)
        self.line, self.what = line, what or line  # (`what`: the line without its advice)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path` (`temporary_prefix`: its writer named), then rename
    it onto `path`; first, the temporaries of `path` that writers killed mid-write left are removed."""
    path = written_through(Path(path))
    existed = path.exists()
    remove_dead_temporaries(path.parent, path.name)  # (a write of this file killed earlier left them)
    try:  # (the folder may have become read-only, or been removed, since the command checked it)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as err:
        if disk_full(err):
            raise _full(path, None, existed) from err
        if err.errno in (*REFUSED, errno.ENOENT):
            raise _refused(path, err, existed) from err
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
        # (a file-size limit reached: `ulimit -f`; torch.save's short write is a RuntimeError "... unexpected pos")
        limited = ours and _at_size_limit(tmp) and (isinstance(err, RuntimeError) or disk_full(err))
        with contextlib.suppress(OSError):  # (a folder turned read-only keeps the temporary: removed on --resume)
            Path(tmp).unlink(missing_ok=True)
        if limited:
            raise _refused(path, OSError(errno.EFBIG, os.strerror(errno.EFBIG), tmp), existed) from err
        # torch.save on a full disk fails with RuntimeError("... unexpected pos ..."), not ENOSPC: the free
        # space, measured before the partial file is removed, tells
        if ours and (disk_full(err) or free is not None and free < NEARLY_FULL):
            raise _full(path, free, existed) from err
        if ours and isinstance(err, OSError) and err.errno in REFUSED and err.filename in (None, tmp, str(path)):
            raise _refused(path, err, existed) from err
        raise


def written_through(path: Path) -> Path:
    """The file a write of `path` replaces: where `path` is a symbolic link, the file it leads to (written through,
    the link kept, as an editor saves a linked file), and refused in one line where it is neither a file nor a
    folder (a device, a FIFO, a socket), which the rename would replace for every other user of it (/dev/null, to
    a root user)."""
    if path.is_symlink():
        link, path = path, Path(os.path.realpath(path))
        if not path.parent.is_dir():
            raise NotWritableError(f"{link} is a link to {path}, whose folder does not exist: make it, or remove "
                                   "the link")
    if path.exists() and not path.is_file() and not path.is_dir():
        raise NotWritableError(f"{path} exists and is not a regular file (a device, a FIFO or a socket), which "
                               "writing it would replace: give the path of a file")
    return path


def _at_size_limit(file: str) -> bool:
    """Whether `file` is as large as this process may write one (`ulimit -f`): a write that failed there passed the
    limit, whatever the error said (a disk that a limit-sized file left nearly full, too)."""
    if resource is None:  # (Windows: no such limit)
        return False
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    with contextlib.suppress(OSError):
        return limit != resource.RLIM_INFINITY and os.path.getsize(file) >= limit - 4096
    return False


def _refused(path: Path, err: OSError, existed: bool) -> RefusedWrite:
    what, advice = _not_writable(path, err)
    return RefusedWrite(err, f"{what}: {advice}{_kept(path, existed)}", what + _kept(path, existed))


def _full(path: Path, free: int | None, existed: bool) -> DiskFullError:
    full = DiskFullError(no_space_line(path, free, existed))
    full.what = no_space_what(path, free) + _kept(path, existed)  # (without its advice: a caller gives its own)
    return full


@contextlib.contextmanager
def one_at_a_time(lock: Path, waiting: Callable[[], object]) -> Iterator[None]:
    """The block, run by one process at a time among those given the same `lock` file (an exclusive flock on it;
    the file is made if need be, and removed by its holder at the end). A process that must wait calls `waiting`
    once first, to say so. Where the platform has no flock or the file cannot be made (a read-only folder), the
    block runs at once."""
    fd = _locked(Path(lock), waiting) if fcntl is not None else None
    try:
        yield
    finally:
        if fd is not None:
            _HELD_LOCKS.discard(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)  # (before the unlock: a waiting process then finds its file gone and opens anew)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


_HELD_LOCKS: set[int] = set()  # the descriptors of this process's `one_at_a_time` locks


def locked_file(path: Path, acquire: Callable[[int], bool]) -> int | None:
    """An open descriptor of the lock file `path` (made if need be) on which `acquire(fd)` took its flock, or None
    where the file cannot be opened or `acquire` gives up (False). A holder removes the file's name before it
    unlocks, so the file locked may no longer be the one of that name: then the one now there is locked. What
    `acquire` raises (a refusal, Ctrl-C while it waits) closes the file first. One mechanism for the run folders'
    claims (`rundir.claim_run_dir`) and for `one_at_a_time`."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            return None
        try:
            if not acquire(fd):
                os.close(fd)
                return None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


def _locked(lock: Path, waiting: Callable[[], object]) -> int | None:
    said = False

    def acquire(fd: int) -> bool:  # at once, else after saying so (once), waiting; False where there are no locks
        nonlocal said
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):  # (no locks here: NFS without lockd)
                return False
            if not said:
                said = True
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        return True

    fd = locked_file(lock, acquire)
    if fd is not None:
        _HELD_LOCKS.add(fd)
    return fd


def _close_locks_in_child() -> None:
    """A forked child (the decoding pool's workers) closes its copies of the parent's locks, so that they end with
    the parent even if it is killed while the child lives on."""
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_locks_in_child)


def write_utf8(path: str | Path, text: str) -> None:
    """`text` into the file as UTF-8, whatever the locale; a name's bytes that are not UTF-8 (a file name Python
    read as surrogate escapes) written back as the bytes they were."""
    Path(path).write_text(text, encoding="utf-8", errors="surrogateescape")


def json_text(value: object, indent: int | None = 1) -> str:
    """`value` as strict JSON text (ending in a newline), every NaN or infinite float in it written as null:
    Python's json writes them as the bare NaN and Infinity that JSON lacks and strict readers refuse."""
    return json.dumps(finite_or_null(value), indent=indent, allow_nan=False) + "\n"


def finite_or_null(value: object) -> object:
    """`value` with every NaN or infinite float (in dicts, lists and tuples) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def write_together(writes: list[tuple[Path, Callable[[str], object]]]) -> None:
    """Each (path, write) onto a temporary file beside its path, all of them before any is renamed into
    place: files that belong together are replaced together or (interrupted, failed) not at all."""
    with restored_on_failure([path for path, _ in writes]):  # (a rename that fails after another was made)
        _write_nested(writes)


def _write_nested(writes: list[tuple[Path, Callable[[str], object]]]) -> None:
    if writes:
        (path, write), rest = writes[0], writes[1:]
        atomic_write(path, lambda tmp: (write(tmp), _write_nested(rest)))


@contextlib.contextmanager
def restored_on_failure(paths: list[Path]) -> Iterator[None]:
    """Files the body replaces (renames onto) that belong together (e.g. a safetensors folder's weights and
    config.json): where it fails or is interrupted after replacing some, each of `paths` gets back the file it held
    (a hard link kept aside, `.NAME.<writer>.XXXXXXXX.tmp`, which a later write removes if this process is killed),
    or is removed where it held none; so no half-made set is left, of one write's files beside another's."""
    kept: dict[Path, Path | None] = {}
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():  # (not a file the body can replace: its rename fails, and the
            continue  # folder stays)
        kept[path] = _kept_aside(path) if os.path.lexists(path) else None  # (a link, dangling too, kept as a link)
    try:
        yield
    except BaseException:
        for path, backup in kept.items():
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, path)
                elif not path.is_dir():
                    path.unlink(missing_ok=True)
        raise
    finally:
        for backup in kept.values():
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink(missing_ok=True)


def _kept_aside(path: Path) -> Path:
    """A second name for the file `path` (a hard link, else a copy), beside it, named as a temporary of it."""
    while True:
        backup = path.with_name(f"{temporary_prefix(path.name)}{secrets.token_hex(4)}.tmp")
        try:
            os.link(path, backup, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:  # (a file system without hard links)
            shutil.copy2(path, backup, follow_symlinks=False)
        return backup


def _writer_space() -> str:
    """This machine and pid namespace, hashed: a temporary's pid is judged only by processes that share both (one
    written from another machine on a shared disk, or from another container, is never taken for a dead one's)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{zlib.crc32(f'{socket.gethostname()}/{namespace}'.encode()):08x}"


WRITER_SPACE = _writer_space()
# What they are named now: `.NAME.SPACE-PID.XXXXXXXX.tmp`, the writer's machine (and pid namespace) and pid in it.
WRITTEN_BY = re.compile(r"\.(?P<name>.+)\.(?P<space>[0-9a-f]{8})-(?P<pid>[0-9]+)\.[a-z0-9_]{8}\.tmp")


def temporary_prefix(name: str) -> str:
    """The start of the name of a temporary file (or folder) written for `name`: `.NAME.SPACE-PID.`, so that a
    later write can tell one left by a killed process from one a live process is still writing."""
    return f".{_short(name)}.{WRITER_SPACE}-{os.getpid()}."


LONGEST_KEPT = 200  # bytes of a name its temporaries' names keep whole: they add up to 40 to it, and a name has 255


def _short(name: str) -> str:
    """`name`, or where it is too long to be part of a temporary's name (a legal name of 220-255 bytes was refused
    as "File name too long"), its first bytes and a checksum of all of it."""
    raw = os.fsencode(name)
    if len(raw) <= LONGEST_KEPT:
        return name
    return f"{os.fsdecode(raw[:LONGEST_KEPT - 9])}~{zlib.crc32(raw):08x}"


def _alive(pid: int) -> bool:
    """Whether process `pid` of this machine runs (a zombie, not yet reaped, counts as running)."""
    if pid == os.getpid() or os.name == "nt":  # (Windows' os.kill ends the process it is asked about)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: another user's process, running)
        return True
    return True


def left_by_the_dead(name: str, target: str | None = None) -> bool:
    """Whether `name` is a temporary (of `target`, when given) whose writer, a process of this machine, has ended;
    False for one of a live process, of another machine or container, or of an older convolab (no writer named)."""
    found = WRITTEN_BY.fullmatch(name)
    return (found is not None and (target is None or found["name"] == _short(target))
            and found["space"] == WRITER_SPACE and not _alive(int(found["pid"])))


def remove_dead_temporaries(folder: str | Path, target: str) -> list[Path]:
    """Delete the temporaries (files, or staging folders) beside `folder`/`target` that writes of it left when their
    process was killed mid-write (SIGKILL, the out-of-memory killer: nothing ran to remove them), and return them;
    those of a process still writing, here or elsewhere, stay. Never raises: a folder that cannot be read or
    written is the write's own error to give."""
    removed = []
    start = f".{_short(target)}."
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(start) and entry.name.endswith(".tmp") and left_by_the_dead(entry.name, target):
                path = Path(folder) / entry.name
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(path)
    return removed


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writes into `folder` left when their process was killed mid-write
    (SIGKILL, a crash of the machine: nothing runs to remove them), and return them: those that name their
    writer, a process of this machine that has ended. A hidden `.NAME.XXXXXXXX.tmp` that names none is left
    alone: it is as likely another program's atomic write (mkstemp's usual name) as an older convolab's."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file() and left_by_the_dead(p.name)]
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


def _kept(path: Path, existed: bool) -> str:
    return f"; the previous {path.name} is unchanged" if existed else ""


def _not_writable(path: Path, err: OSError) -> tuple[str, str]:
    """(what failed, what to do) of a write the system refused."""
    if err.errno == errno.EFBIG:
        return (f"{path} cannot be written in full (File too large: past the largest file this process may write, "
                "`ulimit -f`, or its file system keeps)", "raise the limit, or write elsewhere")
    why = {errno.EROFS: "its file system is read-only", errno.ENOENT: "the folder no longer exists"}.get(
        err.errno, "permission denied")
    return f"{path.parent} cannot be written ({why}) while writing {path.name}", "make it writable, or write elsewhere"


def no_space_what(path: Path, free: int | None = None) -> str:
    left = f" ({free / 2**20:.1f} MiB free)" if free is not None else ""
    return f"no space left on the disk of {path.parent}{left} while writing {path.name}"


def no_space_line(path: Path, free: int | None = None, existed: bool = False) -> str:
    return f"{no_space_what(path, free)}: free some space, or write elsewhere{_kept(path, existed)}"
