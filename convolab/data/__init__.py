"""Data: the offline default `mnist5k`, `digits`, torchvision sets, and image folders or tars."""
from __future__ import annotations

import difflib
import logging
import os
from numbers import Integral
from pathlib import Path
from typing import Any

from .._paths import user_cache
from ..errors import DataError, FieldError
from .base import FOLDER_VAL_FRACTION, ImageData, LabelledImages, Split, per_class_subset, stratified_split
from .builtin import load_digits, load_mnist5k
from .folder import load_image_folder
from .labels_csv import TabularImages, load_labels_csv
from .stream import LOADERS, StreamingImageData, StreamSplit, cache_limit_bytes
from .torchvision_sets import TORCHVISION_SETS, load_torchvision

log = logging.getLogger("convolab")

BUILTIN_SETS = ("mnist5k", "digits")
DATA_SETS = BUILTIN_SETS + TORCHVISION_SETS


def default_data_dir() -> str:
    """Where torchvision's data sets are read and downloaded: $CONVOLAB_DATA, else convolab/data in the user's
    cache folder."""
    return user_cache("CONVOLAB_DATA", "data")


def absolute_source(source: str) -> str:
    """What a run records of its --data: a data set's name as it is; an existing folder or file (of images, a tar, a
    labels CSV) by its absolute path, links resolved, so that evaluate, features and --resume read the same data
    from any folder. Links are kept (a labels CSV linked into its images' folder names them from there)."""
    if source.strip() and source not in DATA_SETS and Path(source).expanduser().exists():
        return os.path.abspath(os.path.expanduser(source))
    return source


def relative_record(source: str) -> bool:
    """Whether a run's recorded --data is a relative path: what convolab recorded before 2026-11-28 (and a Python
    run before 2026-11-30), which names other data from another folder."""
    return bool(source.strip()) and source not in DATA_SETS and not os.path.isabs(os.path.expanduser(source))


def read_from_here(source: str, where: str | Path, otherwise: str) -> str:
    """A relative --data a run recorded (`relative_record`), read from the current folder where it is there, with a
    warning naming the folder it reads (it may hold other data than the run's), else one line; `where` names the
    record, `otherwise` says what else to do."""
    old = f"{where} records its data as the relative path {source!r}, as convolab did before 2026-11-28"
    if not Path(source).expanduser().exists():
        raise DataError(f"{old}, which is not there from this folder: {otherwise}")
    absolute = os.path.abspath(os.path.expanduser(source))
    log.warning("%s: read from this folder as %s; if that is not the run's data, %s", old, absolute, otherwise)
    return absolute


def _looks_like_path(source: str) -> bool:
    """(`/` on every system: on Windows a missing `photos/cats` was "an unknown data set")"""
    return "/" in source or os.sep in source or source.startswith(".") or Path(source).suffix != ""


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _names(field: str, value: object) -> list[str] | None:
    """A labels CSV's `targets` or `inputs`: a list of column names, or one name alone (a string, taken as one
    column, not a character at a time as before), or None; anything else a FieldError naming the argument."""
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise FieldError(field, f"must be a column name or a list of them (e.g. ['species', 'age']), got {value!r:.60}")


def load_data(source: str, data_dir: str | None = None, download: bool = False,
              skip_bad_images: bool = False, val_fraction: float | None = None, image_size: int | None = None,
              loader: str = "auto", workers: int | None = None, targets: list[str] | str | None = None,
              inputs: list[str] | str | None = None, whole: bool = False) -> LabelledImages:
    """A named data set (`mnist5k`, `digits`, `mnist`, `fashion-mnist`, `cifar10`, `cifar100`) or
    an image folder / .tar / .tar.gz of one (`root/<class>/*.png`, optional train/ and test/);
    `image_size` resizes a folder's images as they are decoded (named sets are resized per batch).

    `loader`: a folder's small images are decoded once into a uint8 cache (`cache`), large ones are
    streamed from their files by `workers` DataLoader processes (`stream`); `auto` chooses by size.

    `val_fraction`: of an image folder without a test/ or val/ split (or a labels CSV without a split column), the
    fraction of each class held out as its test split (None: 0.1); data with a test split of their own keep it.

    `whole`: the data are to be scored, not trained on (`convolab evaluate` of other data than the run's):
    an image folder without a test/ split is all test images, and one class will do; so are the rows of a
    labels CSV without a split column.

    A `.csv` is a labels CSV (data/labels_csv.py): its image files, `targets` columns (classes or numbers)
    and `inputs` columns (more images or numbers), decoded once and held in memory; each a list of names, or one
    name alone (`targets="species"`).
    """
    if not isinstance(source, (str, os.PathLike)):  # (5 or None was a TypeError from pathlib, naming no argument)
        raise DataError(f"load_data's source must be a data set name or a path, got {source!r:.60}")
    source = os.fspath(source)
    if not str(source).strip():
        raise DataError("`data` is empty: give a data set name (mnist5k, digits, mnist, fashion-mnist, cifar10, "
                        "cifar100) or the path of an image folder, a .tar/.tar.gz of one, or a labels CSV")
    given_fraction, val_fraction = val_fraction, FOLDER_VAL_FRACTION if val_fraction is None else val_fraction
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        # (the CLI refuses it first; a caller of the library is told here)
        raise FieldError("val_fraction", f"must be a number in [0, 1), got {val_fraction!r}")
    if image_size is not None and not (_is_int(image_size) and image_size >= 1):  # type: ignore[operator]
        # (-3 was "no readable image in FOLDER", 0 ignored, 2.5 a TypeError from inside PIL)
        raise FieldError("image_size", f"must be a positive integer (pixels a side) or None, got {image_size!r}")
    image_size = None if image_size is None else int(image_size)  # (numpy's too)
    targets, inputs = _names("targets", targets), _names("inputs", inputs)
    if loader not in LOADERS:
        raise DataError(f"`loader` must be one of {', '.join(LOADERS)}, got {loader!r}")
    cache_limit_bytes()  # (a bad CONVOLAB_CACHE_LIMIT_GB is one line whatever the data and its cache: it was read
    # only when a cache was made, so a script's typo passed on every run after the first)
    if workers is not None and workers < 0:
        raise DataError(f"`workers` must be 0 or more, got {workers}")
    if loader == "stream" and (source in DATA_SETS):
        raise DataError(f"`loader` stream reads image folders and tars; {source} is held in memory, "
                        "drop `loader` or give a folder")
    if (targets or inputs) and not source.lower().endswith(".csv"):
        raise DataError(f"`targets` and `inputs` name the columns of a labels CSV; {source} is not a .csv file")
    if source in DATA_SETS and Path(source).is_dir():
        log.warning("`data` %s names the built-in data set; the folder %s here is not read (give ./%s for it)",
                    source, source, source)
    if data_dir is not None and source not in TORCHVISION_SETS:
        log.warning("`data_dir` %s is where torchvision's data sets (%s) live; %s is read as given, not from it",
                    data_dir, ", ".join(TORCHVISION_SETS), source)
    if source == "mnist5k":
        return _sourced(load_mnist5k(), source, {})
    if source == "digits":
        return _sourced(load_digits(), source, {})
    if source in TORCHVISION_SETS:
        return _sourced(load_torchvision(source, data_dir or default_data_dir(), download), source,
                        {"data_dir": data_dir})
    path = Path(source).expanduser()
    is_csv = path.suffix.lower() == ".csv"
    if is_csv:
        if loader == "stream":
            raise DataError("`loader` stream reads image folders and tars; a labels CSV is held in memory")
        if skip_bad_images:  # (a folder's unreadable files are counted and skipped; a CSV's rows are each meant)
            raise DataError(f"`skip_bad_images` skips the unreadable files of an image folder or tar; the labels CSV "
                            f"{source} names each of its files: fix or remove the row of a bad one, and drop the flag")
        return _sourced(load_labels_csv(path, targets, inputs, val_fraction, image_size, whole=whole), source,
                        {"targets": targets or [], "inputs": inputs or [], "val_fraction": given_fraction,
                         "image_size": image_size})
    if path.is_file() and path.suffix.lower() in (".tsv", ".tab"):
        raise DataError(f"{source}: a labels CSV is read from a file ending in .csv (tab- or semicolon-separated "
                        f"ones too); name it {path.with_suffix('.csv').name}")
    if path.exists():
        return _sourced(load_image_folder(path, skip_bad_images=skip_bad_images, val_fraction=val_fraction,
                                          resize=image_size, loader=loader, workers=workers, whole=whole), source,
                        {"skip_bad_images": skip_bad_images, "val_fraction": given_fraction, "image_size": image_size})
    if _looks_like_path(source):
        raise DataError(f"`data` path {source} does not exist; give an image folder, a .tar/.tar.gz "
                        f"of one, or a data set name ({', '.join(DATA_SETS)})")
    close = difflib.get_close_matches(source.lower(), DATA_SETS, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise DataError(f"unknown data set {source!r}{hint} (known: {', '.join(DATA_SETS)}; "
                    f"or give a path to an image folder or tar)")


def _sourced(data: LabelledImages, source: str, options: dict[str, Any]) -> LabelledImages:
    """`data` marked with what they were read from, as a run records its `data` (`absolute_source`), and the
    `options` of the call that decide their images, as a run records them (a hold-out fraction only where one was
    held out: data with a test split of their own ignore it): a Trainer given them records these (not its config's
    `data`, mnist5k by default, and its options, whatever it trained on)."""
    if not data.held_out:
        options.pop("val_fraction", None)
    data.source, data.loaded_with = absolute_source(source), options
    return data


__all__ = ["DATA_SETS", "FOLDER_VAL_FRACTION", "LOADERS", "absolute_source", "read_from_here", "relative_record",
           "ImageData",
           "LabelledImages", "Split", "StreamSplit", "StreamingImageData", "TabularImages", "default_data_dir",
           "load_data", "load_digits", "load_labels_csv", "load_mnist5k", "load_torchvision", "per_class_subset",
           "stratified_split"]
