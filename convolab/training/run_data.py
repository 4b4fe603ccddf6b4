"""The data a training run takes: what its config names, loaded as every training verb loads it, its subsets, and
the validation images --val-fraction holds out of data with a test split of their own."""
from __future__ import annotations

from ..data import load_data
from ..data.base import LabelledImages, check_subset_counts
from ..errors import ConfigError, FieldError
from .config import TrainConfig
from .distributed import Distributed, launch_env


def load_config_data(config: TrainConfig, say_subsets: bool = True) -> LabelledImages:
    """The data a training config names, as every training verb loads it (and the subsets it asks for);
    `say_subsets`: a warning where a subset asks for more images than its split holds (not where an experiment's
    quick form asks for "at most" so many, nor once per run of a comparison)."""
    data = load_data(config.data, config.data_dir, config.download, config.skip_bad_images, config.val_fraction,
                     config.image_size, config.loader, config.workers, config.targets or None, config.inputs or None)
    check_subset_counts(data, config.train_subset, config.test_subset, say=say_subsets)
    return config_subsets(config, data)


def config_subsets(config: TrainConfig, data: LabelledImages) -> LabelledImages:
    """The --train-subset/--test-subset of `data` (streamed data too); data that are those subsets already
    (a caller loaded them with `load_config_data`) as they are."""
    if config.train_subset is None and config.test_subset is None:
        return data
    check_subset_counts(data, config.train_subset, config.test_subset, say=False)
    subset = data.per_class_subsets(config.train_subset, config.test_subset)
    if len(subset.train) == len(data.train) and len(subset.test) == len(data.test):
        return data
    check_batch_size(config.batch_size, len(subset.train), launch_env("WORLD_SIZE", 1))
    # Said by build_run once the model and options are checked: a bad one is then the command's only line.
    subset.subset_note = (f"a subset: {len(subset.train)} of {len(data.train)} training and {len(subset.test)} of "
                          f"{len(data.test)} test images")
    return subset


def validation_split(config: TrainConfig, data: LabelledImages) -> LabelledImages:
    """Data with a test split of their own, given --val-fraction: that fraction of each class of the training
    images scores the epochs, the test split kept unseen for the end (`LabelledImages.with_validation`)."""
    if not config.val_fraction or data.held_out or config.val_fraction_of_one_split:  # (a folder of one split: held
        return data  # out as it was read; an older convolab's run: not held out of data with a test split)
    if data.unseen_test is not None:  # (a folder's val/ and test/)
        raise FieldError("val_fraction", f"{config.val_fraction:g}: {config.data} has val/ and test/ folders, whose "
                                         "val/ scores each epoch while test/ stays unseen until the end; leave "
                                         "`val_fraction` out")
    held = data.with_validation(config.val_fraction)
    if not len(held.test):
        raise FieldError("val_fraction", f"{config.val_fraction:g} holds out no image of the {len(data.train)} "
                                         f"training images of {data.name} ({data.num_classes} classes; each class "
                                         "keeps one to train on at least): give a larger fraction, or more images")
    return held


def load_run_data(config: TrainConfig, dist: Distributed) -> LabelledImages:
    """The run's data; with several processes rank 0 loads first, so that a --download, an image
    cache or a decompressed archive is made once and the other ranks find it ready."""
    if dist.is_main:
        data = load_config_data(config)
    dist.barrier()
    if not dist.is_main:
        data = load_config_data(config)
    return data


def check_batch_size(batch_size: int, train_images: int, processes: int) -> None:
    """A batch no bigger than the training set: an epoch drops its last partial batch (a larger: no step at all)."""
    if train_images < processes:
        raise ConfigError(f"the {train_images} training image{'s' if train_images != 1 else ''} cannot be shared by "
                          f"{processes} processes (each needs one image a step at least); run {train_images} "
                          "processes or fewer, or give more images")
    if batch_size > train_images:
        most = train_images // processes * processes  # shared evenly by the processes
        raise FieldError("batch_size", f"{batch_size} is larger than the {train_images} training images; "
                                       f"give at most {most}")


__all__ = ["check_batch_size", "config_subsets", "load_config_data", "load_run_data", "validation_split"]
