"""In-memory image data (uint8 NCHW tensors, batched by indexing: no per-sample Python work), and what
every data set answers, in memory or streamed (`LabelledImages`)."""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, DataError
from .augment import channel_statistics

log = logging.getLogger("convolab")

FOLDER_VAL_FRACTION = 0.1  # held out of a folder of one split (or a labels CSV without a split column) to test on


@dataclass
class Split:
    """Images as a uint8 tensor N x C x H x W and labels as int64 N."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        # (ConfigError is a ValueError, which these checks raised before)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ConfigError(f"images must be uint8 N x C x H x W, got {self.images.dtype} "
                              f"{tuple(self.images.shape)}")
        # One class index an image: a label of another shape (N x 1) or fractional values would fail mid-training,
        # far from its cause. (A labels CSV's other targets are carried beside them: TableSplit.targets.)
        labels = self.labels
        if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point() \
                or labels.is_complex() or labels.dtype == torch.bool:
            got = f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ConfigError(f"labels must be a 1-D integer tensor of N class indices, got {got}"
                              + ("; give labels.flatten()" if isinstance(labels, torch.Tensor) and labels.ndim > 1
                                 and labels.numel() == len(labels) else ""))
        if len(self.images) != len(labels):
            raise ConfigError(f"{len(self.images)} images but {len(labels)} labels")
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:  # (a REPL: its size, not every pixel)
        return f"{type(self).__name__}({len(self)} images of {'x'.join(map(str, self.images.shape[1:]))})"

    def subset(self, index: torch.Tensor) -> Split:
        """A new Split of the images and labels at `index` (indices or a boolean mask)."""
        return Split(self.images[index], self.labels[index])


class LabelledImages:
    """What every data set answers, held in memory (`ImageData`) or streamed from its files
    (`StreamingImageData`): its name, class names, train and test splits (each with `labels` and a
    length), the shape of its images and their per-channel statistics."""

    name: str
    classes: list[str]

    held_out = False  # its test split was held out of the training images by --val-fraction (else its own)
    # A test split kept apart, scored once at the end, while other images score the epochs: its own, kept by
    # `with_validation` (the images held out of its training split score them), or a folder's test/ beside the val/
    # folder that scores them (None: the test split scores the epochs, or was held out of the training images)
    unseen_test = None
    # A subset's line for the log ("a subset: 500 of 4000 training and ..."), set where a training config made it
    # (`config_subsets`) and said once by the first run built on it (`build_run` takes it: a comparison's next
    # runs on the same data do not repeat it)
    subset_note: str | None = None
    # What load_data read them from, as a run records its `data` (absolute), and the options of that call that decide
    # the images (`loaded_with`: those a training config records too: a CSV's `targets`, a folder's hold-out...);
    # kept by copies and subsets, so that a Trainer given them records them (None: data made in Python)
    source: str | None = None
    loaded_with: dict[str, Any] | None = None

    def __repr__(self) -> str:  # (a REPL: what the data are, not a dump of every pixel)
        names = ", ".join(map(repr, self.classes[:5])) + (", ..." if len(self.classes) > 5 else "")
        return (f"{type(self).__name__}({self.name!r}: {len(self.classes)} classes [{names}], {len(self.train)} "
                f"training and {len(self.test)} test images of {'x'.join(map(str, self.image_shape))})")

    @property
    def num_classes(self) -> int:
        """How many class names there are (labels are 0 to num_classes - 1)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the data's images: as held in memory, or as a stream decodes them."""
        raise NotImplementedError

    def channel_stats(self, channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images, in [0, 1] units, as a model of `channels` input
        channels sees them (colour images made grey, grey ones made colour; None: as they are)."""
        raise NotImplementedError

    def per_class_subsets(self, train: int | None, test: int | None) -> LabelledImages:
        """`train` training and `test` test images (None: all), every class alike, the same ones each time."""
        raise NotImplementedError

    def with_validation(self, fraction: float) -> LabelledImages:
        """A copy whose test split is `fraction` of each class of the training images (drawn as a folder's
        --val-fraction draws them: seeded, the same images whatever the run's seed), trained on no more; this data's
        own test split kept apart as its `unseen_test`."""
        if self.unseen_test is not None:  # (a second call made the first's validation images the "test" split)
            raise ConfigError(f"{self.name} keeps a test split unseen already (a folder's test/ beside the val/ that "
                              "scores each epoch, or with_validation's); call it on data whose test split scores them")
        train, validation = stratified_split(self.train.labels, fraction, seed=0, argument="`fraction`")
        data = copy.copy(self)
        data.train, data.test = self.train.subset(train), self.train.subset(validation)
        data.unseen_test, data.held_out = self.test, True
        data.forget_statistics()
        return data

    def scoring_unseen_test(self) -> LabelledImages:
        """A copy whose test split is the one kept unseen (`unseen_test`): what is scored once, at the end."""
        if self.unseen_test is None:
            raise ConfigError(f"{self.name} keeps no test split unseen: its test split is the one scored")
        data = copy.copy(self)
        data.test, data.unseen_test, data.held_out = self.unseen_test, None, False
        return data

    def forget_statistics(self) -> None:
        """Drop what was measured on the training split (a copy given another one): nothing, where nothing is kept."""

    def decoded_as(self, size: int | None = None, random_crop: bool | None = None, min_scale: float | None = None,
                   flip: bool | None = None, crop_pct: float | None = None,
                   interpolation: str | None = None) -> LabelledImages:
        """This data with its images decoded at `size` (and, for training, cropped and mirrored so; for
        evaluation, centre-cropped at `crop_pct` and resampled with `interpolation`): data read from files
        decode each image so; data held in memory are resized per batch, and are returned as they are."""
        return self

    def eval_batches(self, split, batch_size: int, pin_memory: bool = False
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels, indices) of `split` in order, batch by batch."""
        raise NotImplementedError


@dataclass(repr=False)  # (LabelledImages' repr)
class ImageData(LabelledImages):
    """A named data set held in memory: a train and a test split of uint8 images, and its class names."""

    name: str
    train: Split
    test: Split
    classes: list[str]

    def __post_init__(self) -> None:
        # (data built in Python: a label past the class names would fail mid-training, far from its cause)
        for split_name, split in (("train", self.train), ("test", self.test)):
            bad = split.labels[(split.labels < 0) | (split.labels >= len(self.classes))]
            if len(bad):
                raise DataError(f"{self.name}: the {split_name} split has label {int(bad[0])}, outside the "
                                f"{len(self.classes)} classes (labels 0 to {len(self.classes) - 1} index the "
                                "class names)")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the training images."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def channel_stats(self, channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1] units, as `channels` channels (None: as held)."""
        return channel_statistics(self.train.images, channels)

    def eval_batches(self, split: Split, batch_size: int, pin_memory: bool = False
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels, indices) of `split` in order, `batch_size` at a time (the last may be fewer);
        slices of the tensors held, so `pin_memory` is not used."""
        for start in range(0, len(split), batch_size):
            stop = min(start + batch_size, len(split))
            yield split.images[start:stop], split.labels[start:stop], torch.arange(start, stop)

    def per_class_subsets(self, train: int | None, test: int | None) -> ImageData:
        """A new ImageData of `train` training and `test` test images (None: all), drawn by `per_class_subset`."""
        data = ImageData(self.name, self.train.subset(per_class_subset(self.train.labels, train)),
                         self.test.subset(per_class_subset(self.test.labels, test)), self.classes)
        # (a subset of a folder's held-out test split is held out still; of validated data, validated still)
        data.held_out, data.unseen_test = self.held_out, self.unseen_test
        data.source, data.loaded_with = self.source, self.loaded_with
        return data


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int = 0,
                     argument: str = "test_fraction") -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic train/test indices holding out `test_fraction` of every class, and never all of a class:
    one image at least stays to train on (at --val-fraction 0.999, a class of 2 images had none, and its output
    was trained by no image without a word). `argument`: the caller's name of the fraction, as a refusal says it."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise ConfigError(f"{argument} must be a number in [0, 1), got {test_fraction!r}")  # (-0.5 held out 3 of 7)
    gen = torch.Generator().manual_seed(seed)
    train, test = [], []
    for cls in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = min(round(len(idx) * test_fraction), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values


def per_class_subset(labels: torch.Tensor, count: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of `count` images (all if fewer, or if None), the classes as evenly represented as they
    allow, drawn at random within each class (seeded, so every run takes the same ones)."""
    if count is not None and count < 1:
        raise ConfigError(f"a subset of {count!r} images: give a whole number of at least 1, or None for all")
    if count is None or count >= len(labels):
        return torch.arange(len(labels))
    gen = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
    by_class = [idx[torch.randperm(len(idx), generator=gen)] for idx in by_class]
    taken = [0] * len(by_class)
    remaining = count
    while remaining:  # round-robin, so a small class gives all it has and the others fill in
        for k, idx in enumerate(by_class):
            if remaining and taken[k] < len(idx):
                taken[k] += 1
                remaining -= 1
    return torch.sort(torch.cat([idx[:n] for idx, n in zip(by_class, taken)])).values


def check_subset_counts(data: LabelledImages, train: int | None, test: int | None, say: bool = True) -> None:
    """--train-subset/--test-subset against the splits of `data`: fewer images than a split has classes cannot take
    every class alike (the first classes by name would leave the test scoring classes never trained on):
    one line; more images than the split holds take them all, and (`say`) a warning says so (config.json keeps the
    number asked)."""
    scored = "validation" if data.unseen_test is not None else "test"  # (a folder's val/, scored beside its test/)
    for argument, count, split, name in (("`train_subset`", train, data.train, "training"),
                                         ("`test_subset`", test, data.test, scored)):
        if count is None or count < 1:  # (per_class_subset refuses the latter)
            continue
        classes = len(torch.unique(split.labels))
        if count < classes:
            raise ConfigError(f"{argument} {count} is fewer than the {classes} classes of the {name} images: a subset "
                              f"takes every class alike, at least one image each; give {classes} or more")
        if say and count > len(split):
            log.warning("%s %d is more than the %d %s images: all of them are used", argument, count, len(split), name)


class EmptySplitError(DataError):
    """A split by --val-fraction that leaves the training or the test images empty. Its message tells a verb that
    takes --val-fraction (train, compare, finetune, lr-find) to change it; `without_val_fraction` is the line for
    a verb that splits as the run did and takes no --val-fraction (features, evaluate)."""

    def __init__(self, found: str, layout: str, more: str, unsplit: str, val_fraction: float, test_empty: bool):
        super().__init__(f"{found} ({layout}, or {'raise' if test_empty else 'lower'} `val_fraction` from "
                         f"{val_fraction:g})")
        more = f", or {more}" if val_fraction > 0 else ""  # (nothing is held out at 0, however many there are)
        self.without_val_fraction = (f"{found} ({layout}{more}: of {unsplit}, this command holds out {val_fraction:g} "
                                     f"of each class, as `convolab train --val-fraction {val_fraction:g}` would, and "
                                     "takes no `val_fraction`)")
