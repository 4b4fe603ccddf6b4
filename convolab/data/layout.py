"""Which split and class each image of a folder or archive names by its path: `root/<class>/<image>`, or
`root/<split>/<class>/<image>` where every top folder is a split (train/, test/, val/ and their usual
spellings). A layout that would silently be read otherwise (split folders of other names, split folders
beside other folders) is refused in one line."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError
from .names import class_name

# torchvision's own sets and most downloads use train/test/val; the longer spellings are common enough
# (Kaggle's training/, testing/, validation/) that reading them as classes would surprise everyone.
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test",
               "val": "test", "valid": "test", "validation": "test"}
TEST_NAMES = ("test", "testing")  # beside a val/ folder, kept unseen until the end (val/ scores each epoch)
SPLIT_FOLDERS = "train/, test/ or val/ (or training/, testing/, valid/, validation/)"


@dataclass(frozen=True)
class ImageEntry:
    """One image of the source: where it is, which split and class its path names, and its class folder."""

    location: str  # path relative to the folder, or the tar member name
    split: str | None
    class_name: str  # the folder's name read as UTF-8, in NFC (`names.class_name`): alike in every locale
    folder: str = ""  # the class folder's path, as `location` is written


def _listed(names: list[str], most: int = 4) -> str:
    shown = ", ".join(f"{n}/" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _looks_like_splits(tops: list[str]) -> bool:
    """Top folder names of splits spelled otherwise (train_set/ and test_set/, mnist_train/ and mnist_val/)."""
    lower = [t.lower() for t in tops]
    return any("train" in t for t in lower) and any("test" in t or "val" in t for t in lower)


def _check_tops(root: str, paths: list[str], rests: list[list[str]]) -> None:
    """Refuse a layout whose top folders are not classes though their names say otherwise: split folders
    (their images in class folders) beside other folders, or folders named like splits (train_set/,
    test_set/) under which every image lies two folders down. Class folders of subfolders (cat/indoor/,
    cat/outdoor/) are classes, as torchvision's ImageFolder reads them."""
    tops = sorted({r[0] for r in rests if len(r) > 1})
    nested = sorted({r[0] for r in rests if len(r) > 2})
    splits = [t for t in nested if t.lower() in SPLIT_NAMES]
    others = [t for t in tops if t.lower() not in SPLIT_NAMES]
    if splits and others:
        raise DataError(f"{root} holds split folders ({_listed(splits)}) beside other folders ({_listed(others)}), "
                        f"which would all be read as classes; move {_listed(others)} out of it, or rename "
                        f"{'it' if len(others) == 1 else 'them'} val/ if {'it is' if len(others) == 1 else 'they are'}"
                        " the validation split")
    if _looks_like_splits(tops) and all(len(r) > 2 for r in rests):
        example = paths[0]
        raise DataError(f"{root}: every image lies two folders down (e.g. {example}), so its top folders "
                        f"({_listed(tops)}) would be read as classes; convolab reads top folders as splits only "
                        f"when they are named {SPLIT_FOLDERS}: rename them so, or lay the images out as "
                        "root/<class>/<image>")


def _shared(parts: list[list[str]], archive: bool) -> int:
    """How many top folders every path shares and the layout reads past: an archive's wrapping folders
    (`cifar10/` of cifar10.tar.gz), and a lone train/ (the training split, the test images then held out by
    --val-fraction). A folder given is read from its top, as torchvision's ImageFolder reads it (a lone class
    folder with subfolders is one class); a lone test/ or val/ is a split without training images."""
    common = 0
    while all(len(p) > common + 2 for p in parts) and len({p[common] for p in parts}) == 1:
        split = SPLIT_NAMES.get(parts[0][common].lower())
        if split == "test" or not archive and split != "train":
            break
        common += 1
    return common


def _check_spellings(root: str, tops: set[str]) -> None:
    """One line where two spellings of one split (val/ and validation/) would be pooled silently."""
    for kind in ({"train", "training"}, {"test", "testing"}, {"val", "valid", "validation"}):
        both = sorted(t for t in tops if t.lower() in kind)
        if len(both) > 1:
            raise DataError(f"{root} holds {_listed(both)}, spellings of one split; keep one (move the images of "
                            "the others into it)")


def classify(paths: list[str], root: str = "the data",
             archive: bool = False) -> tuple[list[ImageEntry], str | None]:
    """Assign split and class from the path layout, after the folders every path shares that it reads past
    (`_shared`); and a note when a test/ folder is kept unseen (split "unseen") because a val/ folder scores the run
    (train/, val/ and test/). `root` names the data in the errors; `archive`: the paths are a tar's members (read as
    UTF-8), else a folder's (as the system gives them). Class names are read alike either way (`names.class_name`)."""
    parts = [p.split("/") for p in paths]
    common = _shared(parts, archive)
    # Split folders (train/, test/, val/...) when every top folder is one: then an image directly in one
    # is out of place, not a reason to read the split folders as classes.
    tops = {p[common] for p in parts if len(p) > common + 1}
    has_splits = bool(tops) and all(t.lower() in SPLIT_NAMES for t in tops)
    if not has_splits:
        _check_tops(root, paths, [p[common:] for p in parts])
    else:
        _check_spellings(root, tops)
    entries = []
    for path, p in zip(paths, parts):
        rest = p[common:]
        if has_splits and len(rest) >= 3:
            entries.append(ImageEntry(path, SPLIT_NAMES[rest[0].lower()], class_name(rest[1], not archive),
                                      "/".join(p[:common + 2])))
        elif has_splits and len(rest) == 2:
            raise DataError(f"{path} is not inside a class folder of {rest[0]}/; lay images out as "
                            f"root/{rest[0]}/<class>/<image>, or move it out")
        elif len(rest) >= 2:
            entries.append(ImageEntry(path, None, class_name(rest[0], not archive), "/".join(p[:common + 1])))
        elif has_splits:
            raise DataError(f"{root}/{path} lies beside the split folders ({_listed(sorted(tops))}); move it into a "
                            "class folder of one of them, or out")
        else:
            raise DataError(f"{root}/{path} is not inside a class folder; lay images out as {root}/<class>/<image>")
    val = sorted(t for t in tops if SPLIT_NAMES.get(t.lower()) == "test" and t.lower() not in TEST_NAMES)
    test = [t for t in sorted(tops) if t.lower() in TEST_NAMES]
    if has_splits and test and val:  # val/ scores each epoch and picks best.pt; test/ stays unseen until the end
        entries = [ImageEntry(e.location, "unseen", e.class_name, e.folder) if e.location.split("/")[common] in test
                   else e for e in entries]
        unseen = sum(e.split == "unseen" for e in entries)
        return entries, (f"{val[0]}/ scores each epoch and {test[0]}/ ({unseen} images) is kept unseen, scored "
                         "once at the end with best.pt")
    return entries, None
