"""Image folders (`root/<class>/*.png`, optionally under `train/` and `test/` or `val/`) and .tar or .tar.gz
archives of one (`archive.py`, `decompress.py`): classified by path (`layout.py`), then cached or streamed.
Images are decoded once into a uint8 tensor cache on disk, keyed by the source's content, so later runs load a
single file instead of decoding thousands of JPEGs.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_write, one_at_a_time
from .._paths import user_cache
from .._platform import usable_cores
from ..errors import DataError
from .archive import IMAGE_SUFFIXES, FileReader, ImageSource, compression_of
from .base import ImageData, Split
from .decode import decode_image, ignore_interrupts, majority_mode
from .decompress import decompress_once, write_failure
from .layout import SPLIT_NAMES, ImageEntry, classify
from .skipping import SAY_SKIPPED, classes_with_an_image, main_rank, say_empty, say_skipped
from .splits import TEST, UNSEEN, cached_codes, check_split_classes, split_codes, split_indices, without_skipped_classes
from .stream import StreamingImageData, StreamSplit, should_stream
from .workers import watched

log = logging.getLogger("convolab")

LOOKS = {"L": "grey (L)", "RGB": "in colour (RGB)"}
CACHE_VERSION = 8  # 2: grey images among colour ones cached in colour; 3: grey palette images (P, GIF) cached grey;
# 4: the listing's empty class folders and --loader auto's choice recorded (refused and chosen on a warm cache); 5: an
# archive's links read, integer grey images scaled alike, R = G = B pictures grey, the skipped files named; 6: an
# archive's members named as tar -x names them (`/dog/`, `./cat/` were classes '' and '.'); 7: class names read
# as UTF-8 in NFC in every locale (`names.class_name`: one cached in an ISO-8859-1 shell was garbled in UTF-8 ones);
# 8: a test/ beside val/ cached too, kept unseen (a reader of version 7, sharing the file, trained on those images)


def default_cache_dir() -> str:
    """Where decoded images are cached: $CONVOLAB_CACHE, else convolab/images in the user's cache folder."""
    return user_cache("CONVOLAB_CACHE", "images")


class _Source(ImageSource):
    """A folder or archive of images, and its content key, which names its decoded cache."""

    def __init__(self, path: Path, cache_root: Path | None = None):
        super().__init__(path)
        self.cache_root = cache_root
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """The cache key: the archive's bytes, or the folder's names, sizes and modification times.

        Hashing an archive reads all of it, so the result is remembered under `cache_root`, keyed by
        the archive's path, size, modification time and inode (as git's index and make trust them):
        a later run on the same unchanged file costs one stat, and a replaced file is hashed again."""
        if self._fingerprint is None:
            self._fingerprint = self._remembered_hash() if self.is_tar else self._folder_hash()
        return self._fingerprint

    def _remembered_hash(self) -> str:
        st = self.path.stat()
        stamp = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{CACHE_VERSION}"
        memo = None
        if self.cache_root is not None:
            memo = self.cache_root / "fingerprints" / f"{hashlib.sha256(os.fsencode(stamp)).hexdigest()[:32]}.txt"
            try:
                remembered = memo.read_text(encoding="utf-8").strip()
                if len(remembered) == 32:
                    return remembered
            except OSError:
                pass
        digest = hash_archive(self.path)
        if memo is not None:
            try:
                memo.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(memo, lambda tmp: Path(tmp).write_text(digest + "\n", encoding="utf-8"))
            except OSError:  # a read-only cache folder: hash again next time
                pass
        return digest

    def _folder_hash(self) -> str:
        digest = _cache_digest()
        for name, st in self.file_stats():  # a name that is not UTF-8 hashed by its bytes (os.fsencode)
            digest.update(os.fsencode(f"{name}\n" if st is None else f"{name}|{st.st_size}|{st.st_mtime_ns}\n"))
        return digest.hexdigest()[:32]


def _cache_digest():
    """SHA-256 seeded with the cache version: a new version never reuses an old cache file."""
    return hashlib.sha256(f"convolab-image-cache-{CACHE_VERSION}".encode())


def hash_archive(path: Path) -> str:
    """The content key of an archive: SHA-256 of its bytes (with the cache version), 32 hex digits."""
    digest = _cache_digest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


PARALLEL_DECODE_MIN = 4096  # fewer images decode faster in this process than worker processes start
DECODE_CHUNK = 512


def _decode_chunk(items: list[tuple[str, bytes]], resize: int | None) -> list[tuple[str, np.ndarray | None, str]]:
    return [(location, *decode_image(data, resize)) for location, data in items]


def _chunks(items: Iterator[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    chunk: list[tuple[str, bytes]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pool_start_method() -> str:
    """How the decoding pool starts its processes: fork on Linux (nothing to import again), spawn elsewhere: on macOS
    fork "should be considered unsafe" (Python's docs: system libraries may start threads; it crashed children)."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _decode_all(source: _Source, wanted: set[str], resize: int | None
                ) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(location, HWC array or None, mode or the reason) of every wanted file, decoded by up to 8 processes, one a CPU
    of this process's affinity (CIFAR-10's 60,000 JPEGs took 20 s in one), read in one pass in this process."""
    procs = min(8, usable_cores())
    if procs < 2 or len(wanted) < PARALLEL_DECODE_MIN:
        for location, data in source.read_all(wanted):
            yield (location, *decode_image(data, resize))
        return
    # The workers ignore Ctrl-C (it reaches the process group: one interrupted holding the result queue's lock would
    # leave all waiting forever); this process takes it, drops the chunks not begun and waits for those under way.
    with watched(f"the {procs} processes that decode the images into the cache", "raise the limit, or stream the "
                 "images instead (`loader` stream `workers` 0)"):
        pool = ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context(pool_start_method()),
                                   initializer=ignore_interrupts)
        try:
            pending = []
            for chunk in _chunks(source.read_all(wanted), DECODE_CHUNK):
                pending.append(pool.submit(_decode_chunk, chunk, resize))
                while pending and (pending[0].done() or len(pending) > 4 * procs):
                    yield from pending.pop(0).result()
            for future in pending:
                yield from future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _decode_source(source: _Source, entries: list[ImageEntry], skip_bad: bool,
                   resize: int | None = None) -> tuple[list[ImageEntry], np.ndarray, list[tuple[str, str]]]:
    """The entries decoded, their images stacked N x C x H x W, and the (location, why) of each file skipped."""
    by_location = {e.location: e for e in entries}
    decoded: dict[str, tuple[np.ndarray, str]] = {}
    bad: list[tuple[str, str]] = []
    from tqdm.auto import tqdm

    for location, array, mode in tqdm(_decode_all(source, set(by_location), resize), total=len(by_location),
                                      disable=None, desc="decoding into the cache", unit="img", leave=False,
                                      dynamic_ncols=True):
        if array is None:
            bad.append((location, f"cannot be decoded ({mode})"))
        else:
            decoded[location] = (array, mode)
    # The common size and mode are those of most images; the rest are mismatches.
    sizes = Counter(a.shape[:2] for a, _ in decoded.values())
    modes = Counter(m for _, m in decoded.values())
    if not sizes:
        raise DataError(f"no readable image in {source.path}")
    size, mode = sizes.most_common(1)[0][0], modes.most_common(1)[0][0]
    for location, (array, m) in list(decoded.items()):
        if mode == "RGB" and m == "L":  # a grey photo among colour ones is read in colour, as torchvision and the
            decoded[location] = (np.repeat(array[..., None], 3, axis=2), "RGB")  # streamed path read it
        elif mode == "L" and m == "RGB" and (array[..., :1] == array).all():  # a grey picture stored as RGB (R = G =
            decoded[location] = (np.ascontiguousarray(array[..., 0]), "L")  # B): grey, as the streamed path reads it
    resized = {loc for loc, (array, _) in decoded.items() if array.shape[:2] != size}  # what --image-size mends
    total = len(decoded)

    def common(count: int, what: str, kind: str) -> str:  # (most images, or the most of any: 22 of 90 at 6 sizes)
        return f"most images are {what}" if 2 * count > total else \
            f"the most common {kind} is {what} ({count} of {total} images)"
    for location, (array, m) in list(decoded.items()):
        if array.shape[:2] != size or m != mode:
            what = (f"is {array.shape[1]}x{array.shape[0]} while {common(sizes[size], f'{size[1]}x{size[0]}', 'size')}"
                    if array.shape[:2] != size else f"is {LOOKS[m]} while {common(modes[mode], LOOKS[mode], 'kind')}")
            bad.append((location, what))
            del decoded[location]
    if bad and not skip_bad:
        location, why = sorted(bad)[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        hint = ", or `image_size` N to resize every image" if location in resized else ""
        raise DataError(f"image {source.describe(location)} {why}{more}; fix or remove it, pass "
                        f"`skip_bad_images` to count and skip such files{hint}")
    kept = [by_location[loc] for loc in sorted(decoded)]
    stack = np.stack([decoded[e.location][0] for e in kept])
    stack = stack[:, None] if stack.ndim == 3 else stack.transpose(0, 3, 1, 2)  # N x C x H x W
    return kept, np.ascontiguousarray(stack), sorted(bad)


def load_image_folder(path: str | Path, skip_bad_images: bool = False, val_fraction: float = 0.1,
                      cache_dir: str | Path | None = None, resize: int | None = None, loader: str = "auto",
                      workers: int | None = None, whole: bool = False) -> ImageData | StreamingImageData:
    """An image folder or an archive of one: small images through the on-disk uint8 cache, large ones
    streamed from their files by DataLoader workers (`loader`: auto, cache or stream; see `stream.py`).

    `resize` scales every image to `resize` x `resize` as it is decoded: photographs of any size
    then share one small tensor cache instead of being refused for their mixed sizes.

    `whole`: the data are to be scored, not trained on: a folder without a test/ (or val/) split is all
    test images, and one class will do.
    """
    path = Path(path).expanduser()
    cache_root = Path(cache_dir or default_cache_dir()).expanduser()
    source = _Source(path, cache_root)
    cache_file = None
    if loader != "stream":
        key = f"{source.fingerprint()}-skip{int(skip_bad_images)}" + (f"-{resize}px" if resize else "")
        cache_file = cache_root / f"{key}.pt"
        looked = _stamp(cache_file)
        hit = _from_cache(cache_file, source, loader, skip_bad_images, val_fraction, whole)
        if hit is not None:
            return hit
    names, empty = source.list_images(skip_bad_images)
    if not names:
        raise DataError(f"no images found in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} "
                        "files under root/<class>/)")
    entries, note = classify(names, str(path), archive=not path.is_dir())
    classes = sorted({e.class_name for e in entries})
    # An empty folder beside the class folders is a class without images; one inside a class folder is not.
    beside = {os.path.dirname(e.folder) for e in entries}
    empty_named = [d for d in empty if os.path.dirname(d) in beside and os.path.basename(d).lower() not in SPLIT_NAMES]
    if empty_named and not skip_bad_images and not whole:
        _refuse_empty_class(source, empty_named[0])
    say_empty(source, empty_named, whole)
    # What the listing says is wrong is said before any work (with --skip-bad-images, a test class whose training
    # images are all skipped too)
    check_split_classes(path, *split_codes(entries, classes), classes, whole)
    if not skip_bad_images:
        split_indices(path, *split_codes(entries, classes), val_fraction, whole)
    headers = source.sample_headers(names)  # (a sample's headers: what `auto` chooses by, recorded in a cache)
    auto_streams, why = should_stream(headers, len(names), resize)
    if loader == "auto":
        stream = auto_streams
        log.info("%s: %s, so they are %s", path, why, "streamed from the files" if stream else "cached")
        loader = "stream" if stream else "cache"
    if loader == "stream":
        return _streaming(path, source, entries, classes, headers, val_fraction, resize, workers,
                          skip_bad_images, cache_root, whole, note)
    assert cache_file is not None
    with contextlib.suppress(OSError):  # (for the lock; a folder that cannot be made: the cache's warning says so)
        cache_root.mkdir(parents=True, exist_ok=True)
    with one_at_a_time(cache_file.with_suffix(".lock"), lambda: log.info(
            "waiting for another convolab command that is decoding %s into the cache %s", path, cache_file)):
        if _stamp(cache_file) != looked:  # made meanwhile, by the command this one waited for
            hit = _from_cache(cache_file, source, loader, skip_bad_images, val_fraction, whole)
            if hit is not None:
                return hit
        return _decode_into(cache_file, source, entries, classes, skip_bad_images, resize, note, empty_named,
                            auto_streams, val_fraction, whole)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _from_cache(cache_file: Path, source: _Source, loader: str, skip_bad_images: bool, val_fraction: float,
                whole: bool) -> ImageData | None:
    """The data from the cache file, if it is there and serves this `loader`; None if not (or it is damaged)."""
    if not cache_file.is_file():
        return None
    try:
        cached = torch.load(cache_file, weights_only=True)
        # A cache a `--loader cache` run made of images `auto` streams (photographs) is not what
        # `auto` trains on; and the listing's refusals hold whichever command made the cache.
        if loader == "auto" and cached.get("auto_streams", False):
            return None
        if cached.get("empty") and not skip_bad_images and not whole:
            _refuse_empty_class(source, cached["empty"][0])
        say_skipped(source, cached, whole, skip_bad_images)  # (each time: a cache hit skips them too)
        return _assemble(source.path, cached, val_fraction, whole)
    except DataError:  # the data's fault (one class, an empty split), not the cache's: said at once
        raise
    except Exception:  # a damaged cache is rebuilt, never trusted
        log.warning("rebuilding the damaged image cache %s", cache_file)
        return None


def _decode_into(cache_file: Path, source: _Source, entries: list[ImageEntry], classes: list[str],
                 skip_bad_images: bool, resize: int | None, note: str | None, empty_named: list[str],
                 auto_streams: bool, val_fraction: float, whole: bool) -> ImageData:
    """Decode the images into the cache file (one warning where it cannot be written) and return them."""
    path = source.path
    log.info("decoding %d images of %s once into the cache %s", len(entries), path, cache_file)
    kept, images, bad = _decode_source(source, entries, skip_bad_images, resize)
    labels, codes, has_splits = split_codes(kept, classes)
    cached = {
        "images": torch.from_numpy(images),
        "labels": labels,
        "is_test": codes == TEST,
        "is_unseen": codes == UNSEEN,  # (a test/ beside val/, kept unseen; caches before it dropped its images)
        "has_splits": has_splits,
        "classes": classes,
        "skipped": len(bad) + source.skipped_links,
        "skipped_files": [f"{source.describe(location)} {why}" for location, why in bad[:SAY_SKIPPED]],
        "note": note or "",
        "empty": empty_named,  # empty class folders (refused on a hit, unless the command skips them)
        "auto_streams": auto_streams,  # whether `--loader auto` streams these images
    }
    _save_cache(cache_file, cached)
    say_skipped(source, cached, whole)
    return _assemble(path, cached, val_fraction, whole)


def _refuse_empty_class(source: _Source, location: str) -> None:
    raise DataError(f"class folder {source.describe(location)} holds no image; remove it, add images, or pass "
                    "`skip_bad_images` to ignore it")


_UNWRITABLE: set[Path] = set()  # cache folders already warned about in this process


def _save_cache(cache_file: Path, cached: dict) -> None:
    """Write the decoded images into the cache; where that fails (a read-only or full cache folder) the run
    goes on with them unsaved, after one warning per cache folder: they are decoded again next time."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda tmp: torch.save(cached, tmp))
    except OSError as err:  # (DiskFullError is one too)
        if cache_file.parent not in _UNWRITABLE and main_rank():  # (--nproc: said once)
            _UNWRITABLE.add(cache_file.parent)
            log.warning("cannot write the image cache in %s (%s); going on without it, so the images are "
                        "decoded again next time: set CONVOLAB_CACHE to a writable folder to keep them",
                        cache_file.parent, write_failure(err))


def _streaming(path: Path, source: _Source, entries: list[ImageEntry], classes: list[str], headers: list,
               val_fraction: float, resize: int | None, workers: int | None, skip_bad_images: bool,
               cache_root: Path, whole: bool = False, note: str | None = None) -> StreamingImageData:
    """The folder or archive as StreamSplits over its files (a compressed archive decompressed once)."""
    if note:  # (val/ scores each epoch, test/ is kept unseen until the end)
        log.info("%s: %s", path, note)
    if not headers:
        raise DataError(f"no readable image among those sampled from {path}; check the files, or pass "
                        "`loader` cache to decode them all and name the bad ones")
    labels, codes, has_splits = split_codes(entries, classes)
    check_split_classes(path, labels, codes, has_splits, classes, whole)
    if source.is_tar:
        kind = compression_of(path)
        tar_path = decompress_once(path, kind, source.fingerprint(), cache_root) if kind else path
        reader = FileReader(path, tar_path, source.links)
    else:
        reader = FileReader(path)
    if skip_bad_images and not whole:
        entries, classes = classes_with_an_image(path, reader, entries, classes)
        labels, codes, has_splits = split_codes(entries, classes)
        check_split_classes(path, labels, codes, has_splits, classes, whole)
    train_idx, test_idx, unseen_idx = split_indices(path, labels, codes, has_splits, val_fraction, whole)
    everything = StreamSplit(reader, [e.location for e in entries], labels)
    data = StreamingImageData(path.name.split(".")[0], everything.subset(train_idx), everything.subset(test_idx),
                              classes, majority_mode(headers), size=resize, workers=workers,
                              skip_bad_images=skip_bad_images, source=str(path))
    data.held_out, data.unseen_test = not has_splits, everything.subset(unseen_idx) if len(unseen_idx) else None
    return data


def _assemble(path: Path, cached: dict, val_fraction: float, whole: bool = False) -> ImageData:
    images, labels, classes, codes = cached["images"], cached["labels"], list(cached["classes"]), cached_codes(cached)
    if cached.get("skipped") and not whole:
        labels, classes = without_skipped_classes(path, labels, classes, codes, cached["has_splits"])
    # (after decoding: a folder with nothing readable says that first)
    check_split_classes(path, labels, codes, cached["has_splits"], classes, whole)
    if cached.get("note"):
        log.info("%s: %s", path, cached["note"])
    train_idx, test_idx, unseen_idx = split_indices(path, labels, codes, cached["has_splits"], val_fraction, whole)
    if cached.get("note") and not len(unseen_idx) and not whole:  # (val/ would have been scored as the test split)
        raise DataError(f"{path}: no image of its test/ beside val/ could be read (each was skipped by "
                        "`skip_bad_images`); repair or remove them, or the folder")
    data = ImageData(path.name.split(".")[0], Split(images[train_idx], labels[train_idx]),
                     Split(images[test_idx], labels[test_idx]), classes)
    data.held_out = not cached["has_splits"]
    data.unseen_test = Split(images[unseen_idx], labels[unseen_idx]) if len(unseen_idx) else None
    return data
