"""Reading images out of an image folder, a .tar, or a compressed tar, without unpacking it.

An uncompressed .tar is read in place by seeking to each member; a compressed one (.tar.gz, .bz2,
.xz) cannot be read out of order, so it is decompressed once into the cache folder (keyed by its
content) and read from there.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DataError
from .decode import not_a_file, sample_headers
from .names import TAR_NAMES, shown
from .names import printable as printable  # (imported from here by others: inference, tests)

log = logging.getLogger("convolab")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def unreadable_entry(path: str) -> str | None:
    """Why the image file at `path` cannot be read, found by one stat: a symbolic link that leads nowhere, or not
    a regular file (a device or a FIFO read as an image filled the memory or waited for ever); else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if not os.path.islink(path):
            return None  # not a link: reading it says what is wrong
        if err.errno == errno.ELOOP:
            return "is a symbolic link that leads back to itself (a loop)"
        return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
    special = not_a_file(path, mode)
    return f"{special}, not an image file" if special else None


SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # the kernel's, never images; /proc's links lead back into every folder
LISTING_SHOWN_AFTER = 2.0  # seconds of listing a folder before a counter shows it (a home folder given as --data)


def joined(folder: str, name: str) -> str:
    """`name` in `folder` (under a data folder's root) joined with `/` as in an archive, also on Windows (`\\`)."""
    return posixpath.normpath(posixpath.join(folder.replace(os.sep, "/"), name))


def walk(path: Path, loops: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk in a stable order, into folders that are symbolic links too (as torchvision's ImageFolder
    does), except hidden folders (`hidden`), the kernel's folders (`SYSTEM_FOLDERS`) and a link back to a folder
    that holds it (a loop): its path, relative to `path`, is appended to `loops` and it is not entered. The file
    system's root and the kernel's folders themselves are refused; a listing that takes long shows a counter."""
    real = os.path.realpath(path)
    if real == os.sep or _system(real):
        what = "the file system's root" if real == os.sep else "a folder of the kernel's"
        raise DataError(f"{path} is {what}, not a folder of images; give the folder that holds the class folders "
                        "(or train/ and test/)")
    started, bar, folders = time.monotonic(), None, 0
    try:
        for root, subdirs, files in os.walk(path, followlinks=True):
            here = os.path.realpath(root)
            keep = []
            for d in sorted(subdirs):
                if hidden(d):  # .git, .ipynb_checkpoints, __MACOSX: never data, never entered
                    continue
                target = os.path.realpath(os.path.join(root, d))
                if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                    if loops is not None:
                        loops.append(joined(os.path.relpath(root, path), d))
                elif not _system(target):
                    keep.append(d)
            subdirs[:] = keep
            folders += 1
            if bar is None and time.monotonic() - started > LISTING_SHOWN_AFTER:
                bar = tqdm(desc=f"listing {path}", unit=" folders", initial=folders, disable=None, leave=False,
                           dynamic_ncols=True)
            elif bar is not None:
                bar.update()
            yield root, subdirs, sorted(files)
    finally:
        if bar is not None:
            bar.close()


def _system(real: str) -> bool:
    """Whether a (resolved) path lies in the kernel's folders (/dev/shm, where users keep data for speed, not)."""
    if real == "/dev/shm" or real.startswith("/dev/shm/"):
        return False
    return any(real == top or real.startswith(top + os.sep) for top in SYSTEM_FOLDERS)


def file_stat(path: str) -> os.stat_result:
    """The stat of the file a link leads to; of the link itself when it leads nowhere (dangling, a loop)."""
    try:
        return os.stat(path)
    except OSError:
        return os.lstat(path)


def hidden(name: str) -> bool:
    """Whether a file or folder name is one that tools leave behind rather than data: a dot-file or
    dot-folder (.DS_Store, ._x.jpg, .git, .ipynb_checkpoints) or macOS's __MACOSX."""
    return name.startswith(".") and name not in (".", "..") or name == "__MACOSX"


def tar_links(members: list[tarfile.TarInfo]) -> tuple[dict[str, str], list[str], list[str]]:
    """An archive's links as the extracted archive shows them (what ImageFolder reads): {name: the file member whose
    bytes it reads} for each hard link (GNU tar stores a file's second name so; `tar -h` every file met twice), each
    symbolic link to a file, and each file (or link to one) under a symbolic link to a folder, links followed as the
    system follows them (through links to links, and folder links inside a path); and the names of the links that
    lead nowhere in the archive (outside it, to nothing, or into a folder that holds them: a loop, which a folder
    refuses too): those named as images or folders of them, and the others (a class folder linked from outside the
    archive, which `tar` without -h stores so). Before, all were left out without a word."""
    files = {posixpath.normpath(m.name): m.name for m in members if m.isfile()}
    links = {posixpath.normpath(m.name): m for m in members if m.islnk() or m.issym()}

    def target(m: tarfile.TarInfo) -> str:  # (a hard link names its target from the archive's root)
        if m.issym() and m.linkname.startswith("/"):
            return "/"  # (outside the archive)
        return posixpath.normpath(m.linkname if m.islnk() else posixpath.join(posixpath.dirname(m.name), m.linkname))

    def resolved(name: str, hops: int = 0) -> str:  # every link among the path's components followed (8 at most)
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            if (prefix := "/".join(parts[:i])) in links and hops < 8:
                goal = target(links[prefix])
                rest = "/".join(parts[i:])
                return "/" if goal == "/" else resolved(posixpath.normpath(posixpath.join(goal, rest)), hops + 1)
        return name

    found, nowhere, others = {}, [], []
    for name, m in links.items():
        goal = resolved(name)
        if goal in files:
            found[m.name] = files[goal]
            continue
        loop = name.startswith(goal + "/")  # (a link to a folder that holds it: refused, as by a folder)
        inside = {} if goal == "/" or loop else {n[len(goal):]: files[f] for n in (*files, *links)
                                                  if n.startswith(goal + "/") and (f := resolved(n)) in files}
        found.update({m.name.rstrip("/") + rest: member for rest, member in inside.items()})
        if not inside and not any(map(hidden, m.name.split("/"))):
            (nowhere if _is_image(m.name) or loop else others).append(m.name)
    return {name: file for name, file in found.items() if _is_image(name)}, sorted(nowhere), sorted(others)


def member_name(name: str) -> str | None:
    """A tar member's name as `tar -x` unpacks it: leading `/` and `./` dropped, `a//b` and `a/./b` read as `a/b`
    (`` for the archive's `.`); None for a name with a `..` component, which GNU tar and Python's tarfile
    (filter='data') refuse to unpack. The bytes stay where the member's own name finds them."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return None if ".." in parts else "/".join(parts)


def _is_image(name: str) -> bool:
    """An image file name, not inside (or itself) a hidden file or folder."""
    return not any(map(hidden, name.split("/"))) and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


@contextlib.contextmanager
def archive_errors(path: Path) -> Iterator[None]:
    """A truncated or corrupt archive becomes one DataError naming it, not tarfile's traceback."""
    import lzma
    import zlib

    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"archive {path} cannot be read to the end ({reason}); it is truncated or corrupt: "
                        "download or pack it again") from None


_COMPRESSED_MAGIC = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


def compression_of(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(6)
    return next((kind for magic, kind in _COMPRESSED_MAGIC.items() if head.startswith(magic)), None)


def aliases(links: dict[str, str], wanted: set[str]) -> dict[str, list[str]]:
    """{file member: the wanted names that read it: its own, and those of the links to it}."""
    names: dict[str, list[str]] = {}
    for name in sorted(wanted):
        names.setdefault(links.get(name, name), []).append(name)
    return names


class FileReader:
    """The bytes of one image of a folder or an uncompressed tar, by its location; sent to workers (each opens it)."""

    def __init__(self, root: Path, tar_path: Path | None = None, links: dict[str, str] | None = None):
        self.root, self.tar_path = root, tar_path
        self.offsets: dict[str, tuple[int, int]] = {}
        if tar_path is not None:
            with archive_errors(root), tarfile.open(tar_path, mode="r:", **TAR_NAMES) as tar:
                self.offsets = {name: (m.offset_data, m.size) for m in tar
                                if m.isfile() and (name := member_name(m.name)) is not None}
            # a link reads its file member's bytes (`tar_links`)
            self.offsets.update({name: self.offsets[file] for name, file in (links or {}).items()})
        self._file = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": -1}

    def read(self, location: str) -> bytes:
        if self.tar_path is None:
            return (self.root / location).read_bytes()
        if self._pid != os.getpid():  # a forked worker must not share the parent's file position
            self._file, self._pid = open(self.tar_path, "rb"), os.getpid()
        offset, size = self.offsets[location]
        self._file.seek(offset)
        return self._file.read(size)

    def describe(self, location: str) -> str:
        return shown(f"{self.root}:{location}" if self.tar_path is not None else str(self.root / location))


class ImageSource:
    """Lists and reads the images of a folder or a tar archive."""

    def __init__(self, path: Path):
        self.path = path
        self.is_tar = path.is_file()
        self.skipped_links = 0  # links leading nowhere, devices, FIFOs... that list_images(skip_bad=True) left out
        self.links: dict[str, str] = {}  # an archive's links: {name: the file member it reads} (`tar_links`)
        if self.is_tar and not tarfile.is_tarfile(path):
            raise DataError(f"{path} is neither an image folder, a .tar/.tar.gz archive nor a labels CSV (a .csv "
                            "file); give one of these")

    def list_images(self, skip_bad: bool = False) -> tuple[list[str], list[str]]:
        """Image paths, and the class-like folders that hold no image. A symbolic link that leads
        nowhere (dangling, or a loop) is a DataError naming it, or with `skip_bad` counted and left out."""
        if self.is_tar:
            with archive_errors(self.path), tarfile.open(self.path, **TAR_NAMES) as tar:
                members = tar.getmembers()
            if compression_of(self.path) is None:
                self._check_tar_end(members)
            members, climbing = self._unpacked_names(members, skip_bad)
            self.links, nowhere, others = tar_links(members)
            if others:  # (a folder or a file: the archive cannot say which)
                log.warning("%s holds %d link%s that lead%s outside it or to nothing (the first: %s): what %s to is "
                            "not in the archive; pack the files themselves (tar -h follows links)", self.path,
                            len(others), "s" * (len(others) > 1), "" if len(others) > 1 else "s",
                            self.describe(others[0]), "they lead" if len(others) > 1 else "it leads")
            self._refused_or_skipped(nowhere, skip_bad, "is a link that leads nowhere in the archive (outside it, to "
                                     "no file, or into a folder that holds it); pack the files themselves (tar -h "
                                     "follows links)",
                                     "links that lead nowhere" if len(nowhere) > 1 else "link that leads nowhere")
            self.skipped_links = len(nowhere) + climbing
            names = sorted({m.name for m in members if m.isfile() and _is_image(m.name)} | set(self.links))
            dirs = {m.name for m in members if m.isdir() and m.name and not any(map(hidden, m.name.split("/")))}
        else:
            names, dirs, broken, loops = [], set(), [], []
            for root, subdirs, files in walk(self.path, loops):
                rel = os.path.relpath(root, self.path)
                for d in subdirs:
                    dirs.add(joined(rel, d))
                for f in filter(_is_image, files):
                    name, full = joined(rel, f), os.path.join(root, f)
                    if why := unreadable_entry(full):
                        broken.append((f"image {self.describe(name)}", why, os.path.islink(full)))
                    else:
                        names.append(name)
            broken += [(f"folder {self.describe(name)}", "is a symbolic link to a folder that holds it (a loop)", True)
                       for name in loops]
            if broken and not skip_bad:
                what, why, link = sorted(broken)[0]
                more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
                raise DataError(f"{what} {why}{more}; {'fix or remove the link' if link else 'remove it'}, or pass "
                                "`skip_bad_images` to count and skip such files")
            if broken:
                log.warning("skipped %d %s that lead%s nowhere or into a loop, or devices or FIFOs, in %s "
                            "(the first: %s)", len(broken), "symbolic links" if len(broken) > 1 else "symbolic link",
                            "" if len(broken) > 1 else "s", self.path, sorted(broken)[0][0])
            self.skipped_links = len(broken)
        holders = {os.path.dirname(n) for n in names}
        empty = sorted(d for d in dirs if not any(h == d or h.startswith(d + "/") for h in holders))
        return sorted(names), empty

    def _refused_or_skipped(self, names: list[str], skip_bad: bool, why: str, skipped: str) -> None:
        """The archive's images `names` that cannot be read as the unpacked folder reads them: the first named in a
        DataError (`why`: what it is; what to do), or with `skip_bad` a warning counting them (`skipped`: as what)."""
        if names and not skip_bad:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise DataError(f"image {self.describe(names[0])}{more} {why}, or pass `skip_bad_images` to count and "
                            "skip such files")
        if names:
            log.warning("skipped %d %s in %s (the first: %s)", len(names), skipped, self.path,
                        self.describe(names[0]))

    def _unpacked_names(self, members: list[tarfile.TarInfo], skip_bad: bool) -> tuple[list[tarfile.TarInfo], int]:
        """The members named as `tar -x` unpacks them (`member_name`: read as classes `''` and `.` before), without
        those named with `..`: an image among them is a DataError naming it, or with `skip_bad` counted (the count
        returned) and left out, as a link leading outside the archive is."""
        climbing = sorted(m.name for m in members if member_name(m.name) is None and _is_image(m.name)
                          and (m.isfile() or m.islnk() or m.issym()))
        self._refused_or_skipped(climbing, skip_bad, "is named with a '..' component, which tar -x refuses to "
                                 "unpack (outside the folder); pack the archive from inside its folder (tar -C FOLDER "
                                 "-cf ARCHIVE .)", f"image{'s' * (len(climbing) > 1)} named with '..'")
        kept = []
        for m in members:
            if (name := member_name(m.name)) is not None:
                m.name = name
                if m.islnk():  # (a hard link names its file as a member is named)
                    m.linkname = member_name(m.linkname) or m.linkname
                kept.append(m)
        return kept, len(climbing)

    def file_stats(self) -> Iterator[tuple[str, os.stat_result | None]]:
        """Every image file (as `list_images` reads them: not hidden, an image suffix) and folder of a folder, in
        a stable order, as (path relative to the folder, stat; None and a trailing / for a folder): what its
        fingerprint hashes. Folders count by name alone, so that an empty class folder, refused when found, is
        found on every run. Other files are not data: a `.DS_Store` that Finder rewrites, a notes.txt, changed,
        made the whole folder decode again into another cache file. A link that leads nowhere gives its own stat
        rather than an error."""
        for root, subdirs, files in walk(self.path):
            rel = os.path.relpath(root, self.path)
            for name in subdirs:
                yield joined(rel, name) + "/", None
            for name in filter(_is_image, files):
                yield joined(rel, name), file_stat(os.path.join(root, name))

    def _check_tar_end(self, members: list[tarfile.TarInfo]) -> None:
        """tarfile lists a plain tar cut short without complaint: cut inside a member, that member's
        bytes are missing; cut where a header would start, the listing just ends there. A whole tar
        ends with two zero blocks after its last member (POSIX; tar and Python's tarfile write them)."""
        size = self.path.stat().st_size
        end = max((m.offset_data + m.size for m in members), default=0)
        if end > size:
            reason = f"its last member needs {end} bytes, the file has {size}"
        else:
            with open(self.path, "rb") as f:
                f.seek(-(-end // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
                marker = f.read(2 * tarfile.BLOCKSIZE)
            if marker == bytes(2 * tarfile.BLOCKSIZE):
                return
            reason = "it stops after a member without the two zero blocks that end a tar"
        with archive_errors(self.path):
            raise tarfile.ReadError(reason)

    def read_all(self, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
        if self.is_tar:
            with archive_errors(self.path), tarfile.open(self.path, mode="r|*", **TAR_NAMES) as tar:  # one pass
                names_of = aliases(self.links, wanted)  # (a file member's bytes, under each name that reads it)
                for member in tar:
                    if member.isfile() and (names := names_of.get(member_name(member.name) or "")):
                        f = tar.extractfile(member)
                        data = f.read() if f is not None else b""
                        for name in names:
                            yield name, data
        else:
            for name in sorted(wanted):
                yield name, (self.path / name).read_bytes()

    def sample_headers(self, names: list[str], count: int = 32) -> list[tuple[tuple[int, int], str]]:
        """Size and mode of up to `count` images: spread over a folder, the first ones of an archive
        (a compressed archive cannot be read out of order)."""
        if not self.is_tar:
            return sample_headers(lambda name: (self.path / name).read_bytes(), names, count)
        first: dict[str, bytes] = {}
        wanted = set(names)
        with archive_errors(self.path), tarfile.open(self.path, mode="r|*", **TAR_NAMES) as tar:
            for member in tar:
                name = member_name(member.name)  # (a link's target: sampled under its own name)
                if member.isfile() and name in wanted:
                    f = tar.extractfile(member)
                    first[name] = f.read() if f is not None else b""
                    if len(first) == count:
                        break
        return sample_headers(first.__getitem__, sorted(first), count)

    def describe(self, location: str) -> str:
        return shown(f"{self.path}:{location}" if self.is_tar else str(self.path / location))
