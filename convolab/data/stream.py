"""Large images, streamed: decoded batch by batch in DataLoader worker processes, never all in memory.

Small images (digits, CIFAR) are decoded once into the uint8 cache of `folder.py`. Photographs are
too large for that, and their sizes differ, so they are read from the folder or tar archive
(`archive.py`) for every batch, the way torchvision's ImageFolder does, but with the work split
differently:

- a worker decodes a file straight to the model's input size (`decode.decode_crop`): for training a
  random-resized crop (Inception's scale augmentation, the paper's "patches of 8% to 100% of the
  image"), for evaluation the centre crop of the image resized to size / 0.875;
- a training crop is mirrored with probability 1/2 in the worker too (a PIL transpose of the small
  crop, cheaper there than on the batch); the worker hands back uint8, a quarter of float32's
  bytes; normalization and random erasing run on whole batches on the training device
  (`augment.BatchTransform`), as for cached data;
- each image's crop and flip are drawn from (seed, epoch, index), not from a worker's random state, so a run
  is reproducible with any number of workers and resumes mid-epoch exactly.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
import torch

from .._platform import usable_cores
from ..errors import ConfigError, DataError
from .archive import FileReader
from .augment import channel_statistics
from .base import LabelledImages, per_class_subset
from .decode import CROP_PCT, MIN_CROP_SCALE, decode_crop, failure, ignore_stop_signals, majority_mode
from .workers import keep_persistent, watched, worker_count_quieted

log = logging.getLogger("convolab")

LOADERS = ("auto", "cache", "stream")
LARGE_SIDE = 128  # images whose longer side exceeds this stream unless --image-size shrinks them for the cache
STATS_SAMPLE = 256  # images decoded to estimate the data's mean and std
NAMED_SKIPS = 10  # unreadable images named one line each with --skip-bad-images; the rest are counted


def default_workers() -> int:
    """Up to 8, one a CPU this process may run on (its affinity: `taskset`, Slurm's --cpus-per-task), not the
    machine's count: 8 workers on a 1-CPU allocation of a big node only contend."""
    return min(8, usable_cores())


# multiprocessing's AF_UNIX socket for passing a batch's shared memory between processes: TMPDIR/pymp-XXXXXXXX/
# listener-XXXXXXXX, whose path must be shorter than the system's sun_path (108 bytes on Linux, 104 on macOS)
SOCKET_NAMES = len("/pymp-XXXXXXXX/listener-XXXXXXXX")
SUN_PATH = 104 if sys.platform == "darwin" or "bsd" in sys.platform else 108


def check_socket_folder(workers: int) -> None:
    """Worker processes hand their batches over through a socket in $TMPDIR where torch shares tensors by file
    descriptor (Linux's default); a $TMPDIR too long for a socket's path ended each worker on an OSError and
    left the epoch waiting for them (the command hung). A ConfigError of one line instead, before any work."""
    if workers <= 0 or torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
        return
    folder = tempfile.gettempdir()
    room = SUN_PATH - 1 - SOCKET_NAMES
    if len(os.fsencode(folder)) > room:
        shown = folder if len(folder) <= 60 else f"{folder[:57]}..."
        raise ConfigError(f"the temporary folder {shown} ($TMPDIR) is {len(os.fsencode(folder))} bytes long: it "
                          f"is too long for the sockets the {workers} data-loading workers pass their images "
                          f"through (at most {room}); set TMPDIR to a shorter folder (or give `workers` 0, where the "
                          "command takes it: train, compare, finetune, lr-find)")


def _sample_key(seed: int, epoch: int, index: int) -> str:
    return f"convolab/{seed}/{epoch}/{index}"


class StreamDataset(torch.utils.data.Dataset):
    """Map-style data set of one split: item (index, epoch) is (uint8 C x S x S, label, index, error)."""

    def __init__(self, split: StreamSplit, size: int, mode: str, train: bool, random_crop: bool,
                 min_scale: float, seed: int, flip: bool = False, crop_pct: float = CROP_PCT,
                 interpolation: str = "bilinear"):
        self.split, self.size, self.mode = split, size, mode
        self.train, self.random_crop, self.min_scale, self.seed = train, random_crop, min_scale, seed
        self.flip, self.crop_pct, self.interpolation = flip, crop_pct, interpolation
        self.channels = 1 if mode == "L" else 3

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int, str]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        location = self.split.locations[index]
        rng = random.Random(_sample_key(self.seed, epoch, index)) if self.train and self.random_crop else None
        try:
            array = decode_crop(self.split.reader.read(location), self.size, self.mode, rng, self.min_scale,
                                self.crop_pct, self.flip, self.interpolation)
            error = ""
        except (OSError, ValueError, SyntaxError, KeyError) as err:
            array = np.zeros((self.size, self.size, self.channels), np.uint8)
            error = failure(err)  # (as the cache's decoding words it: never the repr of a buffer)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
        return tensor, int(self.split.labels[index]), index, error


class EpochBatches:
    """Batch sampler: the epoch's permutation from (seed, epoch), from batch `start` on, this rank's
    share of each global batch; the last partial batch is dropped (as the in-memory loop does)."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(0, max(1, self.n // self.batch_size) - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm = epoch_permutation(self.n, self.seed, self.epoch)
        for b in range(self.start, max(1, self.n // self.batch_size)):
            idx = perm[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world_size]
            yield [(i, self.epoch) for i in idx.tolist()]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of `epoch`, derived from (seed, epoch) so a resumed run needs no state."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


# ----- the splits and the data set ---------------------------------------------------------------
class StreamSplit:
    """A split whose images stay in their files: the locations and labels, read by DataLoader workers."""

    def __init__(self, reader: FileReader, locations: list[str], labels: torch.Tensor):
        self.reader, self.locations, self.labels = reader, list(locations), labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.locations)

    def __repr__(self) -> str:  # (a REPL: its size, not every file's location)
        return f"StreamSplit({len(self)} image files)"

    def subset(self, index: torch.Tensor | list[int]) -> StreamSplit:
        """A new StreamSplit of the locations and labels at `index` (integer indices), on the same reader."""
        index = torch.as_tensor(index, dtype=torch.int64)
        return StreamSplit(self.reader, [self.locations[i] for i in index.tolist()], self.labels[index])

    def __getitem__(self, key: slice) -> StreamSplit:
        """A slice, e.g. one rank's share `[rank::world_size]`."""
        return self.subset(torch.arange(len(self))[key])


class StreamingImageData(LabelledImages):
    """An image folder or tar read batch by batch from its files (see the module's docstring).

    How its images are decoded (the size, random-resized crops for training, random mirroring) is the
    `size` given (--image-size, else 224) until `configure` changes it; the trainer takes a copy
    decoded as its model needs (`decoded_as`) and leaves the data it was given as it was.
    """

    def __init__(self, name: str, train: StreamSplit, test: StreamSplit, classes: list[str], mode: str,
                 size: int | None = None, workers: int | None = None, skip_bad_images: bool = False,
                 source: str = ""):
        self.name, self.train, self.test, self.classes = name, train, test, classes
        self.mode, self.source = mode, source
        self.size = size or 224
        self.workers = default_workers() if workers is None else workers
        # (torch's DataLoader said it three times, a paragraph each; said here once, by --nproc's first process)
        if self.workers > (cores := usable_cores()) and os.environ.get("RANK", "0") == "0":
            log.warning("`workers` %d is more than the %d CPU%s this process may use: the workers share %s, and "
                        "decode no faster than %d would", self.workers, cores, "s" if cores != 1 else "",
                        "them" if cores != 1 else "it", cores)
        check_socket_folder(self.workers)
        self.skip_bad_images = skip_bad_images
        self.random_crop, self.min_scale, self.flip = True, MIN_CROP_SCALE, False
        # The evaluation centre crop: the image resized to size / crop_pct, as torchvision's weights state it
        # (published weights may state their own, and bicubic resampling: `configure`).
        self.crop_pct, self.interpolation = CROP_PCT, "bilinear"
        # Shared with the copies `decoded_as` makes: the files skipped, the statistics by centre crop (size,
        # crop share, resampling).
        self.skipped: set[str] = set()
        self._counted = [0]  # the skipped count last said (a list: shared with the copies, as `skipped` is)
        self._stats: dict[tuple, tuple[tuple[float, ...], tuple[float, ...]]] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, size, size) as decoded: 1 channel for grey ("L") data, else 3."""
        return (1 if self.mode == "L" else 3, self.size, self.size)

    def configure(self, size: int | None = None, random_crop: bool | None = None,
                  min_scale: float | None = None, flip: bool | None = None, crop_pct: float | None = None,
                  interpolation: str | None = None) -> None:
        """The size images are decoded to, whether training images are random-resized crops, and
        whether those are mirrored at random (flips need the crop's random stream); the evaluation centre
        crop's share of the resized image and its resampling (bilinear or bicubic), as published weights
        state them."""
        if flip is not None:
            self.flip = flip
        if crop_pct is not None:
            self.crop_pct = float(crop_pct)
        if interpolation is not None:
            self.interpolation = str(interpolation)
        if size is not None:
            self.size = size
        if random_crop is not None:
            self.random_crop = random_crop
        if min_scale is not None:
            if not 0 < min_scale <= 1:
                raise DataError(f"`min_crop_scale` must be in (0, 1], got {min_scale}")
            self.min_scale = min_scale

    def decoded_as(self, size: int | None = None, random_crop: bool | None = None, min_scale: float | None = None,
                   flip: bool | None = None, crop_pct: float | None = None,
                   interpolation: str | None = None) -> StreamingImageData:
        """A copy of this data that decodes as `configure` would make it; this one is left unchanged."""
        data = copy.copy(self)
        data.configure(size, random_crop, min_scale, flip, crop_pct, interpolation)
        return data

    def per_class_subsets(self, train: int | None, test: int | None) -> StreamingImageData:
        """The images the in-memory data of the same folder would keep (its files are in the same order,
        and `per_class_subset` draws alike), still streamed; the training statistics are the subset's."""
        data = copy.copy(self)
        data.train = self.train.subset(per_class_subset(self.train.labels, train))
        data.test = self.test.subset(per_class_subset(self.test.labels, test))
        data.forget_statistics()
        return data

    def forget_statistics(self) -> None:
        """Drop the training split's channel statistics measured so far (a copy given another training split)."""
        self._stats = {}

    def channel_stats(self, channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of up to 256 training images spread over the split (centre crops), as a
        model of `channels` input channels sees them (None: as they are)."""
        crop = (self.size, self.crop_pct, self.interpolation, channels)
        if crop not in self._stats:
            n = len(self.train)
            k = min(n, STATS_SAMPLE)  # spread over the whole split, however few its images
            picks = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
            dataset = self._dataset(self.train, train=False, seed=0)
            images = [t for t, _, _, err in (dataset[i] for i in picks) if not err]
            if not images:
                raise DataError(f"no readable image among {len(picks)} sampled from {self.source}")
            self._stats[crop] = channel_statistics(torch.stack(images), channels)
        return self._stats[crop]

    def _dataset(self, split: StreamSplit, train: bool, seed: int) -> StreamDataset:
        return StreamDataset(split, self.size, self.mode, train, self.random_crop, self.min_scale, seed, self.flip,
                             self.crop_pct, self.interpolation)

    def _loader(self, dataset: StreamDataset, batch_sampler=None, batch_size: int | None = None,
                pin_memory: bool = False, persistent: bool = False) -> torch.utils.data.DataLoader:
        workers = self.workers
        # Each new iterator draws its workers' base seed from `generator`, by default torch's global stream,
        # which dropout draws on too: a resumed process starts its iterators at other points of the run than
        # the process it continues, so that draw would move the stream and the dropout masks after it. The
        # loader's own generator leaves the global stream alone (the images draw on (seed, epoch, index)).
        with worker_count_quieted():  # (said once, by __init__)
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=batch_sampler, batch_size=batch_size if batch_sampler is None else 1,
                shuffle=False, num_workers=workers, pin_memory=pin_memory, worker_init_fn=ignore_stop_signals,
                persistent_workers=persistent and workers > 0, prefetch_factor=4 if workers > 0 else None,
                generator=torch.Generator().manual_seed(dataset.seed))
        if persistent and workers > 0:
            keep_persistent(loader)  # (their workers are shut down at exit, if the caller did not: `close_workers`)
        return loader

    def train_loader(self, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                     pin_memory: bool = False) -> tuple[torch.utils.data.DataLoader, EpochBatches]:
        """A loader of training batches, and its sampler (`set_epoch(epoch, start_batch)` before each epoch)."""
        sampler = EpochBatches(len(self.train), batch_size, seed, rank, world_size)
        loader = self._loader(self._dataset(self.train, train=True, seed=seed), batch_sampler=sampler,
                              pin_memory=pin_memory, persistent=True)
        return loader, sampler

    def batches(self, loader: torch.utils.data.DataLoader, split: StreamSplit
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels, indices) of each batch of `loader`, without the unreadable images:
        the first one is an error naming the file, or with --skip-bad-images counted and skipped."""
        for images, labels, index, errors in fed(loader):
            bad = [i for i, e in enumerate(errors) if e]
            if bad:
                for i in bad:
                    location = split.locations[int(index[i])]
                    if not self.skip_bad_images:
                        raise DataError(f"image {split.reader.describe(location)} cannot be decoded ({errors[i]}); "
                                        "fix or remove it, or pass `skip_bad_images` to count and skip such files")
                    if location not in self.skipped:
                        self.skipped.add(location)
                        if len(self.skipped) <= NAMED_SKIPS:
                            log.warning("skipped unreadable image %s (%s)", split.reader.describe(location), errors[i])
                        elif len(self.skipped) == NAMED_SKIPS + 1:  # (a folder of thousands: not a line each)
                            log.warning("further unreadable images of %s are skipped without naming each; their "
                                        "count follows each pass over the data", self.source or self.name)
                keep = torch.tensor([not e for e in errors])
                images, labels, index = images[keep], labels[keep], index[keep]
            yield images, labels, index
        if len(self.skipped) > max(NAMED_SKIPS, self._counted[0]):  # (the count of those not named, once a pass)
            self._counted[0] = len(self.skipped)
            log.warning("skipped %d unreadable images of %s so far (%d named above)", len(self.skipped),
                        self.source or self.name, NAMED_SKIPS)

    def eval_loader(self, split: StreamSplit, batch_size: int, pin_memory: bool = False, persistent: bool = False
                    ) -> torch.utils.data.DataLoader:
        """A loader of `split`'s centre crops in order (for `batches`); `persistent`: its workers are kept from one
        pass to the next (a training run's test passes: under spawn, macOS's and Windows' start method, each new
        worker imports torch, seconds an epoch), until the caller shuts them down."""
        return self._loader(self._dataset(split, train=False, seed=0), batch_size=batch_size, pin_memory=pin_memory,
                            persistent=persistent)

    def eval_batches(self, split: StreamSplit, batch_size: int, pin_memory: bool = False
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels, indices) of `split` in order, centre-cropped, batch by batch."""
        return self.batches(self.eval_loader(split, batch_size, pin_memory), split)


def fed(loader: torch.utils.data.DataLoader) -> Iterator:
    """The batches of `started(loader)`; its workers running out of shared memory, where they hand each batch over
    (a container's /dev/shm: Docker gives 64 MiB), one line saying what to do, not torch's traceback of a worker."""
    batches = started(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except RuntimeError as err:
            if "shared memory" not in str(err):
                raise
            free = shutil.disk_usage("/dev/shm").free / 2**20 if os.path.isdir("/dev/shm") else None
            room = f" ({free:.0f} MiB free in /dev/shm)" if free is not None else ""
            raise DataError(f"the {loader.num_workers} `workers` that decode the images ran out of shared memory, "
                            f"where they hand each batch over{room}: give `workers` 0 (decoded in this process), a "
                            "smaller `batch_size`, or more shared memory (`docker run --shm-size 1g`)") from None
        yield batch


def started(loader: torch.utils.data.DataLoader) -> Iterator:
    """`iter(loader)`, its worker processes started ignoring SIGINT and SIGTERM, as they keep them from their first
    instruction (an ignored signal stays ignored across fork and exec, and Python leaves it so): Ctrl-C, SLURM's
    SIGTERM and `kill -- -PGID` reach the whole process group, and a worker that spawn (macOS, Windows) started
    was still importing torch, before `ignore_stop_signals` could run, when it took one and died, failing the batch
    the main process waited for with a traceback instead of its saved stop. A signal meanwhile waits, blocked, for
    this process's own handler."""
    if not loader.num_workers:
        return iter(loader)
    n = loader.num_workers
    with watched(f"the {n} `workers` that decode the images", "give fewer `workers`, or `workers` 0 (decoded in "
                 "this process), or raise the limit"), worker_count_quieted():  # (a limit refusing one: one line,
        # and none left running)
        stops = (signal.SIGINT, signal.SIGTERM)
        handlers = {sig: signal.getsignal(sig) for sig in stops}
        if (not hasattr(signal, "pthread_sigmask") or None in handlers.values()
                or threading.current_thread() is not threading.main_thread()):  # (only the main thread sets them)
            return iter(loader)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set(stops))  # (a blocked signal is kept while ignored)
        for sig in stops:
            signal.signal(sig, signal.SIG_IGN)
        try:
            return iter(loader)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# ----- choosing between the cache and the stream ------------------------------------------------
def cache_limit_bytes() -> int:
    """The size a decoded cache may reach: CONVOLAB_CACHE_LIMIT_GB GiB (4 where unset or empty), read at each call;
    one line when it is no size."""
    text = os.environ.get("CONVOLAB_CACHE_LIMIT_GB") or "4"
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not math.isfinite(gib) or gib < 0:
        raise ConfigError(f"CONVOLAB_CACHE_LIMIT_GB={text!r} is not a size in GiB; set it to a number such as 4 "
                          "(or unset it: 4)")
    return int(gib * (1 << 30))


def sizes_apart(larger: int, smaller: int) -> tuple[str, str]:
    """Two byte counts in GiB, or MiB below 1 GiB, with the decimals that tell them apart (not "0.0 GiB, over
    0.0 GiB")."""
    unit, name = (1 << 30, "GiB") if larger >= 1 << 30 else (1 << 20, "MiB")
    for decimals in range(1, 7):
        texts = (f"{larger / unit:.{decimals}f} {name}", f"{smaller / unit:.{decimals}f} {name}")
        if texts[0] != texts[1]:
            break
    return texts


def should_stream(headers: list[tuple[tuple[int, int], str]], count: int, resize: int | None,
                  limit: int | None = None) -> tuple[bool, str]:
    """Stream when the images are large (longer side over 128 px) and --image-size does not shrink
    them, or when their decoded cache would pass `limit` bytes; and why, in words."""
    limit = cache_limit_bytes() if limit is None else limit
    if not headers:
        return False, "no readable image among those sampled"
    sides = sorted(max(size) for size, _ in headers)
    side = sides[len(sides) // 2]
    channels = 1 if majority_mode(headers) == "L" else 3
    cached_side = resize or side
    estimate = count * channels * cached_side * cached_side
    if resize is None and side > LARGE_SIDE:
        return True, f"images of about {side} px are larger than the {LARGE_SIDE} px cached in memory"
    if estimate > limit:
        need, cap = sizes_apart(estimate, limit)
        return True, f"{count} images at {cached_side} px need {need}, over the cache limit of {cap} " \
                     "(CONVOLAB_CACHE_LIMIT_GB)"
    return False, f"{count} images at {cached_side} px fit the cache ({estimate / (1 << 20):.0f} MiB)"
