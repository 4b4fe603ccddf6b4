"""Where a run's batches come from: data resident on the device, or images streamed from their files.

Both kinds of source answer the same few questions, so that the loop and the builder never ask which
kind they hold:

- `train_batches(epoch, start_batch)`: (uint8 images, labels, indices) of this process's share of each
  remaining training batch of `epoch`, on the device; the order comes from (seed, epoch), so a resumed
  run needs no other state;
- `test_batches(batch_size, shard)`: the test split's batches in order (with `shard`, this process's
  share), the indices pointing into `test_labels` (or its share);
- `train_labels`, `test_labels`: on the device; `preprocess`: how a file becomes the input (squashed
  to the size, or the centre crop of a streamed photo), for the checkpoint;
- `batch_augment`: what the batch transform still does (a stream's workers crop and mirror as they
  decode); `describe()`: for the CLI's "training ... on cpu, streamed by 8 workers";
- `close()`: end the worker processes a stream keeps across epochs (the next epoch starts new ones).

Resident data (`ImageData`) live on the device as uint8 and a batch is an index into them; streamed
data (`StreamingImageData`) are decoded by DataLoader worker processes, batch by batch.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import torch

from ..data import ImageData, StreamingImageData
from ..data.augment import AugmentConfig
from ..data.base import LabelledImages
from ..data.decode import MIN_CROP_SCALE
from ..data.labels_csv import TabularImages
from ..data.stream import StreamSplit, epoch_permutation
from ..data.workers import close_workers
from .distributed import Distributed

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # uint8 images, labels, indices into the labels


def split_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> Iterator[Batch]:
    """(uint8 images, labels, indices) of in-memory data, in order."""
    for start in range(0, len(labels), batch_size):
        stop = min(start + batch_size, len(labels))
        yield images[start:stop], labels[start:stop], torch.arange(start, stop, device=labels.device)


class ResidentBatches:
    """In-memory data moved once to the device; a training batch is an index into it."""

    streamed = False
    preprocess = "resize"
    loader = None

    def __init__(self, data: ImageData, device: torch.device, dist: Distributed, batch_size: int, seed: int,
                 augment: AugmentConfig):
        self.data, self.dist, self.batch_size, self.seed = data, dist, batch_size, seed
        self.batch_augment = augment
        self.train_labels = data.train.labels.to(device)
        self.test_labels = data.test.labels.to(device)
        self.train_images: torch.Tensor | None = data.train.images.to(device)
        self.test_images: torch.Tensor | None = data.test.images.to(device)

    def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """(uint8 images, labels, indices) of this process's share of each training batch of `epoch` from
        `start_batch` on, in the (seed, epoch) order, on the device; the last partial batch is dropped."""
        perm = epoch_permutation(len(self.train_labels), self.seed, epoch).to(self.train_labels.device)
        for b in range(start_batch, max(1, len(perm) // self.batch_size)):  # the last partial batch is dropped
            idx = self.dist.shard(perm[b * self.batch_size:(b + 1) * self.batch_size])  # rank r of W: idx[r::W]
            yield self.train_images[idx], self.train_labels[idx], idx

    def test_batches(self, batch_size: int, shard: bool = False) -> Iterator[Batch]:
        """The test split's (images, labels, indices) in order, on the device; `shard`: this process's share,
        the indices pointing into it."""
        images, labels = self.test_images, self.test_labels
        if shard:
            images, labels = self.dist.shard(images), self.dist.shard(labels)
        return split_batches(images, labels, batch_size)

    def describe(self) -> str:
        """Nothing to add to the CLI's "training ... on DEVICE" line: ""."""
        return ""

    def close(self) -> None:
        """Nothing to end: resident data have no worker processes."""
        pass  # (no worker processes)


class StreamedBatches:
    """Images decoded from their files by worker processes: a training image becomes a random-resized
    crop of the input size (mirrored at random if the augmentation flips), a test image its centre crop."""

    streamed = True
    preprocess = "center-crop"
    train_images = test_images = None

    def __init__(self, data: StreamingImageData, device: torch.device, dist: Distributed, batch_size: int,
                 seed: int, augment: AugmentConfig, size: int, min_crop_scale: float):
        # The workers crop and mirror each image as they decode it; the batch transform does the rest.
        # The source holds its own copy of the data, decoded so; the data it was given stay as they were.
        crop = augment.crop_padding > 0
        self.data = data.decoded_as(size, random_crop=crop, min_scale=min_crop_scale, flip=augment.flip and crop)
        self.dist, self.device = dist, device
        self.batch_augment = dataclasses.replace(augment, crop_padding=0, flip=augment.flip and not crop)
        self.pin_memory = device.type == "cuda"
        self.train_labels = data.train.labels.to(device)
        self.test_labels = data.test.labels.to(device)
        self.loader, self.sampler = self.data.train_loader(batch_size, seed, dist.rank, dist.world_size,
                                                           pin_memory=self.pin_memory)
        # the test passes' split and loader, by (batch size, shard), kept from epoch to epoch with their workers
        self._test: dict[tuple[int, bool], tuple[StreamSplit, torch.utils.data.DataLoader]] = {}

    def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """(uint8 images, labels, indices) of this process's share of each training batch of `epoch` from
        `start_batch` on, decoded by the workers and moved to the device; the last partial batch is dropped."""
        self.sampler.set_epoch(epoch, start_batch)
        for images, labels, index in self.data.batches(self.loader, self.data.train):
            yield (images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True),
                   index.to(self.device, non_blocking=True))

    def test_batches(self, batch_size: int, shard: bool = False) -> Iterator[Batch]:
        """The test split's centre crops as (uint8 images, labels, indices), in order; `shard`: this process's
        share."""
        if (batch_size, shard) not in self._test:
            split = self.dist.shard(self.data.test) if shard else self.data.test
            self._test[batch_size, shard] = split, self.data.eval_loader(split, batch_size, self.pin_memory,
                                                                         persistent=True)
        split, loader = self._test[batch_size, shard]
        return self.data.batches(loader, split)

    def close(self) -> None:
        """Shut the loaders' persistent workers down, with their queues' threads: they would outlive the fit, and,
        SIGTERMed by multiprocessing at exit, leave their `pymp-*` folders in $TMPDIR."""
        for loader in (self.loader, *(loader for _, loader in self._test.values())):
            close_workers(loader)

    def describe(self) -> str:
        """`, streamed by N workers` (`, streamed` with none) for the CLI's "training ... on DEVICE" line."""
        workers = self.data.workers
        return f", streamed by {workers} worker{'s' if workers != 1 else ''}" if workers else ", streamed"


class VectorBatches(ResidentBatches):
    """A labels CSV with numeric input columns: each batch's images come as a pair (uint8 images, their
    rows' standardized numbers), which `VectorInputs` passes through the batch transform to the model."""

    def __init__(self, data: TabularImages, device: torch.device, dist: Distributed, batch_size: int, seed: int,
                 augment: AugmentConfig):
        super().__init__(data, device, dist, batch_size, seed, augment)
        self.train_vectors = data.train.vectors.to(device)
        self.test_vectors = data.test.vectors.to(device)

    def train_batches(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """As ResidentBatches', the images a pair: (uint8 images, their rows' standardized numbers)."""
        for images, labels, idx in super().train_batches(epoch, start_batch):
            yield (images, self.train_vectors[idx]), labels, idx

    def test_batches(self, batch_size: int, shard: bool = False) -> Iterator[Batch]:
        """As ResidentBatches', the images a pair: (uint8 images, their rows' standardized numbers)."""
        vectors = self.dist.shard(self.test_vectors) if shard else self.test_vectors
        for images, labels, idx in super().test_batches(batch_size, shard):
            yield (images, vectors[idx]), labels, idx


class VectorInputs:
    """The batch transform of a model with numeric inputs: a pair's images transformed (augmented,
    normalized), its numbers passed on beside them; a plain batch of images as the transform does it."""

    def __init__(self, transform):
        self.transform = transform

    def __getattr__(self, name: str):
        return getattr(self.__dict__["transform"], name)  # augment, size, channels...

    def __call__(self, batch, train: bool = False, generator: torch.Generator | None = None):
        if isinstance(batch, tuple):
            images, vectors = batch
            return self.transform(images, train=train, generator=generator), vectors.float()
        return self.transform(batch, train=train, generator=generator)


def to_device(batch, device: torch.device):
    """A batch's images (or (images, numbers) pair) on `device`."""
    if isinstance(batch, tuple):
        return tuple(t.to(device, non_blocking=True) for t in batch)
    return batch.to(device, non_blocking=True)


BatchSource = ResidentBatches | StreamedBatches


@functools.singledispatch
def batch_source(data: LabelledImages, device: torch.device, dist: Distributed, batch_size: int, seed: int,
                 augment: AugmentConfig, size: int, min_crop_scale: float) -> BatchSource:
    """The source of `data`'s batches: resident for data held in memory, streamed for data in files."""
    raise TypeError(f"no batch source for {type(data).__name__}; give ImageData or StreamingImageData")


@batch_source.register
def _resident(data: ImageData, device: torch.device, dist: Distributed, batch_size: int, seed: int,
              augment: AugmentConfig, size: int, min_crop_scale: float) -> BatchSource:
    return ResidentBatches(data, device, dist, batch_size, seed, augment)


@batch_source.register
def _tabular(data: TabularImages, device: torch.device, dist: Distributed, batch_size: int, seed: int,
             augment: AugmentConfig, size: int, min_crop_scale: float) -> BatchSource:
    if data.train.vectors is None:
        return ResidentBatches(data, device, dist, batch_size, seed, augment)
    return VectorBatches(data, device, dist, batch_size, seed, augment)


@batch_source.register
def _streamed(data: StreamingImageData, device: torch.device, dist: Distributed, batch_size: int, seed: int,
              augment: AugmentConfig, size: int, min_crop_scale: float) -> BatchSource:
    return StreamedBatches(data, device, dist, batch_size, seed, augment, size, min_crop_scale)


__all__ = ["Batch", "BatchSource", "ResidentBatches", "StreamedBatches", "VectorBatches", "VectorInputs",
           "batch_source", "split_batches", "to_device"]


def unused_options(workers: int | None, min_crop_scale: float, sync_bn: bool, streamed: bool,
                   several: bool) -> list[str]:
    """The options given that this run has no use for, each with why: --workers and --min-crop-scale are streamed
    images', --sync-bn is several processes'."""
    unused = []
    if not streamed and workers is not None:
        unused.append("`workers` (the processes that decode streamed images; these are held in memory)")
    if not streamed and min_crop_scale != MIN_CROP_SCALE:
        unused.append("`min_crop_scale` (of streamed images' random-resized crops; these are held in memory, "
                      "cropped with `augment`'s padding)")
    if sync_bn and not several:
        unused.append("`sync_bn` (batch-norm statistics across processes; this run is one process)")
    return unused

