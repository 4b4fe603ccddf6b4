"""The data a checkpoint's run trained on, read again as it read them (`evaluate`, `features`): its own images, its
subsets, the split it scored; other data read the same way and used whole."""
from __future__ import annotations

import logging
from pathlib import Path

from .._paths import same_path
from ..data import LabelledImages, load_data
from ..data.base import EmptySplitError
from ..data.decode import CROP_PCT
from ..errors import DataError
from .inference import run_config
from .state import data_images

log = logging.getLogger("convolab")

DRAWN_AGAIN = ": its test images are drawn again and may include images the model trained on"


def is_run_data(checkpoint: dict, source: str) -> bool:
    """Whether `source` names the data the checkpoint's run was trained on."""
    recorded = {checkpoint.get("data"), run_config(checkpoint).get("data")} - {None}
    return source in recorded or any(same_path(source, data) for data in recorded)


def load_data_for(checkpoint: dict, source: str, data_dir: str | None = None, download: bool = False,
                  workers: int | None = None, whole: bool = False, skip_bad_images: bool = False,
                  validation: bool = False) -> LabelledImages:
    """`source` read as the checkpoint's run read its data: an image folder streamed if the run streamed
    it, else cached at the run's --image-size (so photos of mixed sizes load as they did in training). The run's
    own data are the run's images: from its --data-dir (unless `data_dir` is given), and its
    --train-subset and --test-subset of them, chosen as training chose them; other data are used whole
    (every class, every image; with `whole`, an image folder without a test/ split is all test images); the
    test split is the one a folder keeps unseen beside its val/ (with `validation`, the data as read: val/ their test
    split and test/ their `unseen_test`); `skip_bad_images` skips unreadable images and odd ones out (as the run's
    did). A warning when the run's data no longer have the numbers of images it had."""
    config = run_config(checkpoint)
    own = is_run_data(checkpoint, source)
    data_dir = data_dir or (config.get("data_dir") if own else None)
    if not Path(source).expanduser().exists():  # a named data set: held in memory, resized per batch
        data = load_data(source, data_dir, download)
    else:
        # As predict reads an image: the centre crop of a run trained on streamed photos (at the crop and
        # resampling its published weights state), else the whole image at the run's size (other data of
        # any sizes: resized to the model's input, as the run's --image-size resized its own).
        streamed = checkpoint.get("preprocess") == "center-crop"
        size = config.get("image_size") or (None if own else int(checkpoint["image_size"][0]))
        # the run's --skip-bad-images, or asked for here (a labels CSV takes none: it names each file)
        skip = skip_bad_images or (bool(config.get("skip_bad_images")) and not source.lower().endswith(".csv"))
        try:
            data = load_data(source, data_dir, download, skip_bad_images=skip,
                             val_fraction=config.get("val_fraction"),  # (None: a folder's default)
                             image_size=None if streamed else size, loader="stream" if streamed else "cache",
                             workers=workers, targets=config.get("targets") or None,
                             inputs=config.get("inputs") or None, whole=whole and not own)
        except EmptySplitError as err:  # (its line names --val-fraction, which a trained run's verbs do not take)
            raise DataError(err.without_val_fraction) from None
        data = data.decoded_as(crop_pct=float(checkpoint.get("crop_pct", CROP_PCT)),
                               interpolation=str(checkpoint.get("interpolation", "bilinear")))
    train_subset, test_subset = (config.get("train_subset"), config.get("test_subset")) if own else (None, None)
    if train_subset is not None or test_subset is not None:
        data = data.per_class_subsets(train_subset and int(train_subset), test_subset and int(test_subset))
    then, now = checkpoint.get("data_images"), data_images(data)["data_images"]  # (a run of train/, val/ and test/
    if own and then and list(then) not in (now, [len(data.train), len(data.test)]):  # by an older convolab: those two)
        log.warning("%s has changed since the run trained on it (%d training and %d test images then, %d and %d "
                    "now)%s", source, *then, *now, DRAWN_AGAIN if data.held_out else "")  # (split folders: fixed)
    # (test/ beside val/: kept unseen by a run that records validation images; a run from before scored val/ as test)
    kept_unseen = data.unseen_test is not None and checkpoint.get("validation_images") and not validation
    return data.scoring_unseen_test() if kept_unseen else data


__all__ = ["is_run_data", "load_data_for"]
