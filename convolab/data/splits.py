"""Which images of a folder or archive a run trains on, which it scores each epoch, and which it keeps unseen:
the split folders' (train/, test/, and a test/ beside a val/ folder, kept unseen for one score at the end) or, for a
folder of one split, --val-fraction of each class held out. Each image's split is a code: TRAIN, TEST or UNSEEN."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from .base import EmptySplitError, stratified_split
from .layout import ImageEntry
from .skipping import say_lost_classes

TRAIN, TEST, UNSEEN = 0, 1, 2  # (UNSEEN: a test/ folder beside the val/ folder that scores each epoch)
CODES = {"test": TEST, "unseen": UNSEEN}


def split_codes(entries: list[ImageEntry], classes: list[str]) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Each entry's class index, its split's code, and whether the folder has split folders."""
    class_index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([class_index[e.class_name] for e in entries], dtype=torch.int64)
    codes = torch.tensor([CODES.get(e.split or "", TRAIN) for e in entries], dtype=torch.int8)
    return labels, codes, any(e.split is not None for e in entries)


def cached_codes(cached: dict) -> torch.Tensor:
    """The split codes an image cache records: its `is_test` and, where the folder keeps a test/ unseen, `is_unseen`."""
    codes = cached["is_test"].to(torch.int8) * TEST
    if cached.get("is_unseen") is not None:
        codes[cached["is_unseen"]] = UNSEEN
    return codes


def split_indices(path: Path, labels: torch.Tensor, codes: torch.Tensor, has_splits: bool, val_fraction: float,
                  whole: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training, test (scored each epoch) and unseen test images' indices; `whole` (other data scored, none
    trained on): the unseen test/ where there is one, else the test split, else every image."""
    none, unseen = torch.zeros(0, dtype=torch.int64), torch.nonzero(codes == UNSEEN).flatten()
    if whole and not (has_splits and (codes != TRAIN).any()):  # to be scored: every image is a test image
        return none, torch.arange(len(labels)), none
    if whole:
        scored = unseen if len(unseen) else torch.nonzero(codes == TEST).flatten()
        return torch.nonzero(codes == TRAIN).flatten(), scored, none
    if has_splits:
        train_idx, test_idx = torch.nonzero(codes == TRAIN).flatten(), torch.nonzero(codes == TEST).flatten()
    else:
        train_idx, test_idx = stratified_split(labels, val_fraction, seed=0)
    if len(train_idx) == 0 or len(test_idx) == 0:
        found = f"{path} yields {len(train_idx)} training and {len(test_idx)} test images; both splits need images"
        if has_splits:
            raise DataError(f"{found} (add a {'train' if len(train_idx) == 0 else 'test'}/ folder of class folders)")
        raise EmptySplitError(found, "add a test/ folder", "more images of each class", "a folder without test/",
                              val_fraction, len(test_idx) == 0)
    return train_idx, test_idx, unseen


def check_split_classes(path: Path, labels: torch.Tensor, codes: torch.Tensor, has_splits: bool,
                        classes: list[str], whole: bool = False) -> None:
    """One line when a test split has classes the training split lacks (a model never taught them, or
    `Cat/` in train and `cat/` in test), and when there is one class (unless scoring)."""
    if not whole and len(classes) < 2:
        raise DataError(f"{path} has one class ({', '.join(classes)}); a classifier needs two or more class "
                        "folders (root/<class>/*.png)")
    if whole or not has_splits:
        return
    taught = set(labels[codes == TRAIN].tolist())
    untaught = sorted(set(labels[codes != TRAIN].tolist()) - taught)
    if untaught and taught:
        where = _splits_holding(labels, codes, untaught)
        raise DataError(f"{path}: {where} {'have' if ' and ' in where else 'has'} classes the training split lacks: "
                        f"{', '.join(classes[c] for c in untaught)} (class folders must be named alike in every split, "
                        "letter case too); rename or remove them")


def _splits_holding(labels: torch.Tensor, codes: torch.Tensor, classes: list[int]) -> str:
    """"the test split", "the validation split" or "the validation and test splits": those of `classes`' images other
    than training ones, named as the folders' splits are (val/ beside test/ is the validation split)."""
    kept = (codes == UNSEEN).any()
    held = torch.isin(labels, torch.tensor(classes))
    where = [name for code, name in ((TEST, "validation" if kept else "test"), (UNSEEN, "test"))
             if (held & (codes == code)).any()]
    return f"the {' and '.join(where)} split{'s' if len(where) > 1 else ''}"


def without_skipped_classes(path: Path, labels: torch.Tensor, classes: list[str], codes: torch.Tensor,
                            has_splits: bool) -> tuple[torch.Tensor, list[str]]:
    """The labels and classes without the classes --skip-bad-images left no image of (each unreadable): left
    out, as an empty class folder is, rather than trained as an output no image teaches. A class left with test
    images but no training image (the listing had some: `load_image_folder` checked it) is one line."""
    taught = set(labels[codes == TRAIN].tolist())
    if has_splits and (untaught := sorted(set(labels[codes != TRAIN].tolist()) - taught)):
        names = ", ".join(classes[i] for i in untaught)
        where = _splits_holding(labels, codes, untaught)
        raise DataError(f"{path}: every training image of class{'es' * (len(untaught) > 1)} {names} was unreadable "
                        f"and skipped (`skip_bad_images`), while {where} {'have' if ' and ' in where else 'has'} some: "
                        "fix or remove those images, or remove the class from every split")
    present = sorted(set(labels.tolist()))
    if len(present) == len(classes):
        return labels, classes
    say_lost_classes(path, [c for i, c in enumerate(classes) if i not in set(present)])
    new_index = torch.full((len(classes),), -1, dtype=torch.int64)
    new_index[present] = torch.arange(len(present))
    return new_index[labels], [classes[i] for i in present]


__all__ = ["CODES", "TEST", "TRAIN", "UNSEEN", "cached_codes", "check_split_classes", "split_codes", "split_indices",
           "without_skipped_classes"]
