"""The decompressed copy of a compressed tar (.tar.gz, .bz2, .xz), made once in the cache folder: such an archive
cannot be read out of order, so its images are read from the copy. Its size is recorded beside it (NAME.size), and
a copy that differs, cut short by a crash, is made again (one without a record: if it does not end as a tar ends)."""
from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import logging
import lzma
from pathlib import Path

from tqdm.auto import tqdm

from .._atomic import atomic_write, one_at_a_time
from ..errors import DataError, DiskFullError
from .archive import archive_errors

log = logging.getLogger("convolab")


def write_failure(err: OSError) -> str:
    """Why a file could not be written, in a few words: `Read-only file system`, `its disk is full`."""
    if isinstance(err, DiskFullError):
        return "its disk is full"
    if err.errno in (errno.EEXIST, errno.ENOTDIR):  # (CONVOLAB_CACHE, or a folder above it, a file)
        return f"a file is in the way of the folder: {err.strerror}"
    return err.strerror or (str(err).splitlines() or [type(err).__name__])[0]


def decompress_once(path: Path, kind: str, fingerprint: str, cache_root: Path) -> Path:
    """The uncompressed tar of a compressed archive, made once in the cache folder (its size recorded beside it).
    A read error of the archive is said as one (truncated or corrupt); a cache that cannot take the copy as another."""
    target = cache_root / f"{fingerprint}.tar"
    if _whole(target):
        return target
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind]

    def write(tmp: str) -> None:
        # (said once the temporary file exists: a cache folder that cannot take it is one error line, no log)
        log.info("decompressing %s once to %s, to read its images in any order", path, target)
        with archive_errors(path):
            src = opener(path, "rb")
        with src, open(tmp, "wb") as dst, \
                tqdm(total=path.stat().st_size, disable=None, desc="decompressing", unit="B", unit_scale=True,
                     leave=False, dynamic_ncols=True) as bar:
            raw = getattr(src, "fileobj", None) or getattr(src, "_fp", None)  # the compressed stream's position
            while True:
                with archive_errors(path):  # (only reading the archive: a failed write is the cache's)
                    block = src.read(1 << 22)
                if not block:
                    break
                dst.write(block)
                if raw is not None and hasattr(raw, "tell"):
                    bar.update(raw.tell() - bar.n)
            size = dst.tell()  # (said: a 4.5 MB archive left 1 GiB in the cache without a word)
            log.info("decompressed %s: %s written to %s (kept for later runs; delete it to free the space)", path,
                     f"{size / (1 << 20):,.1f} MiB" if size >= 1 << 20 else f"{size:,} bytes", target)

    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        with one_at_a_time(target.with_suffix(".lock"), lambda: log.info(
                "waiting for another convolab command that is decompressing %s to %s", path, target)):
            if not _whole(target):  # (made meanwhile, by the command this one waited for)
                if target.is_file():  # (or made by a convolab that did not record its size)
                    log.warning("the decompressed copy %s is damaged: decompressing %s again", target, path)
                atomic_write(target, write)
                size = str(target.stat().st_size)
                with contextlib.suppress(OSError):  # (no room for it: the copy's end blocks vouch for it)
                    atomic_write(target.with_suffix(".size"), lambda tmp: Path(tmp).write_text(size))
    except DataError:
        raise
    except OSError as err:  # (DiskFullError is one too)
        raise DataError(f"cannot write the decompressed copy of {path} into the cache folder {cache_root} "
                        f"({write_failure(err)}), which streaming a compressed archive reads: set CONVOLAB_CACHE to a "
                        "writable folder with room for it, or give an uncompressed .tar") from None
    return target


def _whole(target: Path) -> bool:
    """Whether the decompressed copy `target` has the size recorded beside it (one cut short, by a crash or a hand,
    was read as the user's archive damaged, or with --skip-bad-images trained on in part); with no record (an older
    convolab's copy, or a cache too full or read-only to take the record), whether it ends as a tar ends: a size of
    whole blocks, the last two of them empty."""
    with contextlib.suppress(OSError, ValueError):
        size = target.stat().st_size
        if target.with_suffix(".size").exists():
            return int(target.with_suffix(".size").read_text()) == size
        with open(target, "rb") as f:
            return size % 512 == 0 and size >= 1024 and f.seek(size - 1024) >= 0 and not any(f.read(1024))
    return False
