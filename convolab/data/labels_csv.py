"""A labels CSV: a row per item naming its image file(s) and any number of target columns, classes or
numbers, and optionally a second image or numeric input columns. Decoded once and held in memory.

    image,species,colour,age,split
    img/0.png,cat,red,3.5,train

* The header names the columns. Cells are separated by commas, semicolons or tabs, whichever the header
  line holds most of outside quotes (commas on a tie); in a semicolon or tab file a number may have a
  decimal comma (`3,5`), as Excel writes it where the comma is the decimal sign. The image column is
  `--inputs`' first name, else `image`, `path` or `file`, else the first column of image file names; its
  paths are relative to the CSV's folder. An image (for several image columns, a tuple of images) is one
  item: listed on two rows, even twice the same row, it is refused, naming both lines.
* Targets: `--targets` (each `NAME`, `NAME:class` or `NAME:number`), else every column that is not an
  input, `split` or a column of image paths. A column is a class column when its values are not all
  numbers (a few non-numbers among numbers are refused as typos), else numeric; `nan` and `inf` cells are
  left out of that count, so numbers with them are a numeric column whose `nan` and `inf` cells are
  refused as missing values, and names with them a class column. The first class column
  is the main target (the `main` output: accuracy, per-class figures, the best checkpoint); every other
  target gets its own head, named as its column.
* Numeric targets are standardized with the training rows' mean and std (MSE on them); their mean and
  std are kept so that predictions and the MAE come back in the column's units.
* Inputs (`--inputs image,image2` or `--inputs image,height,weight`): further image columns (values
  with an image suffix, or `NAME:image`) become a second image of the item, stacked on the channels;
  numeric columns a vector (standardized like numeric targets).
* A `split` column (train / test, val, valid, validation) splits the rows; else --val-fraction of each
  main class is held out. Either way both splits need rows: one left empty is refused.
* An empty target or input cell, or a numeric one that is not a finite number, is refused, naming the
  file, line and column (no masking).
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..models.two_input import TAKEN_HEAD_NAMES
from .archive import IMAGE_SUFFIXES
from .base import EmptySplitError, ImageData, Split, per_class_subset, stratified_split
from .columns import Column, restandardized
from .decode import decode_image, not_a_file
from .layout import SPLIT_NAMES
from .names import as_spelled_on_disk, same_form

IMAGE_COLUMNS = ("image", "path", "file")
KINDS = ("class", "number", "image")
NUMERIC_SHARE = 0.9  # a column this share of whose values are numbers is numeric: the rest are typos
DELIMITERS = ",;\t"  # the header line's most frequent one (outside quotes) separates the cells; comma on a tie
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?")  # 3,5: a number in a semicolon or tab file


@dataclass(repr=False)  # (Split's repr)
class TableSplit(Split):
    """A split's images (several images of an item stacked on the channels), its main labels, the other
    targets (class indices, or standardized numbers as float32) and its numeric inputs (N x K or None)."""

    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    vectors: torch.Tensor | None = None

    def subset(self, index: torch.Tensor) -> TableSplit:
        """A new TableSplit of the images, labels, targets and numeric inputs at `index`."""
        return TableSplit(self.images[index], self.labels[index], {k: v[index] for k, v in self.targets.items()},
                          None if self.vectors is None else self.vectors[index])


@dataclass(repr=False)  # (LabelledImages' repr)
class TabularImages(ImageData):
    """A labels CSV held in memory: `columns` are the target columns, the main one first."""

    columns: dict[str, Column] = field(default_factory=dict)
    image_columns: tuple[str, ...] = ("image",)
    vector_columns: tuple[Column, ...] = ()

    @property
    def main_column(self) -> str:
        """The name of the main target column (the first of `columns`), whose classes are `classes`."""
        return next(iter(self.columns))

    def model_options(self, backbone: str, backbone_options: dict) -> dict:
        """The options of the `multitask` model that learns these targets from these inputs on `backbone`."""
        if backbone == "multitask":
            raise ConfigError("a labels CSV builds its heads on the MODEL given: give the backbone (e.g. "
                              "lenet5_modern or resnet20), not multitask")
        tasks = {name: len(c.classes) if c.kind == "class" else 1 for name, c in self.columns.items()
                 if name != self.main_column}
        return {"backbone": backbone, "tasks": tasks, "image_inputs": len(self.image_columns),
                "vector_inputs": len(self.vector_columns), "main_name": self.main_column, **backbone_options}

    def describe(self) -> str:
        """`targets: species (main, 3 classes), age (number); inputs: image, height`."""
        targets = [f"{n} ({'main, ' if n == self.main_column else ''}"
                   f"{f'{len(c.classes)} classes' if c.kind == 'class' else 'number'})"
                   for n, c in self.columns.items()]
        inputs = [*self.image_columns, *(f"{c.name} (number)" for c in self.vector_columns)]
        return f"targets: {', '.join(targets)}; inputs: {', '.join(inputs)}"

    def record(self) -> dict:
        """What a checkpoint keeps of the targets and inputs (numbers in their columns' units)."""
        return {"targets": {n: c.to_dict() for n, c in self.columns.items()},
                "inputs": [*self.image_columns, *(c.name for c in self.vector_columns)],
                "vectors": {c.name: c.to_dict() for c in self.vector_columns}}

    def with_validation(self, fraction: float) -> TabularImages:
        """As LabelledImages', the numeric targets and inputs standardized again by the rows left to train on (the
        validation rows' numbers took part in the mean and std before); new tensors, this data's left as they were."""
        data = super().with_validation(fraction)
        names = ("train", "test", "unseen_test")
        splits = [getattr(data, k) for k in names]
        targets = [dict(split.targets) for split in splits]
        vectors = [None if split.vectors is None else split.vectors.clone() for split in splits]
        columns, vector_columns = dict(self.columns), list(self.vector_columns)
        for name, column in self.columns.items():
            if column.kind == "number":
                columns[name], values = restandardized(column, [t[name] for t in targets])
                for t, value in zip(targets, values):
                    t[name] = value
        for k, column in enumerate(vector_columns):
            vector_columns[k], values = restandardized(column, [v[:, k] for v in vectors])
            for v, value in zip(vectors, values):
                v[:, k] = value
        for name, split, t, v in zip(names, splits, targets, vectors):
            setattr(data, name, TableSplit(split.images, split.labels, t, v))
        data.columns, data.vector_columns = columns, tuple(vector_columns)
        return data

    def per_class_subsets(self, train: int | None, test: int | None) -> TabularImages:
        """As ImageData's, the classes of the main column alike; the other targets and inputs follow their images."""
        pick = {"train": per_class_subset(self.train.labels, train),
                "test": per_class_subset(self.test.labels, test)}
        data = TabularImages(self.name, self.train.subset(pick["train"]), self.test.subset(pick["test"]),
                             self.classes, self.columns, self.image_columns, self.vector_columns)
        data.held_out, data.unseen_test = self.held_out, self.unseen_test  # (rows held out: still so)
        data.source, data.loaded_with = self.source, self.loaded_with
        return data


def _split_spec(spec: str) -> tuple[str, str | None]:
    name, sep, kind = spec.partition(":")
    name, kind = name.strip(), kind.strip().lower()
    if sep and kind not in KINDS:
        raise DataError(f"column {spec!r}: the kind after ':' must be one of {', '.join(KINDS)}")
    return name, kind if sep else None


class _Table:
    """The CSV's header and rows, and its one-line errors (file, line, column)."""

    def __init__(self, path: Path):
        self.path = path
        if why := not_a_file(path):
            raise DataError(f"labels CSV {path} {why}, not a file of text; give the CSV file itself")
        try:
            data = path.read_bytes()  # UTF-8 (a BOM or none), or UTF-16 with its BOM
            text = data.decode("utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig")
            if "\0" in text:
                raise UnicodeError("a NUL character (UTF-16 without a BOM?)")
            self.delimiter = _delimiter(text)
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        except FileNotFoundError:
            raise DataError(f"labels CSV {path} does not exist") from None
        except UnicodeError as err:
            raise DataError(f"labels CSV {path} is not UTF-8 text ({err}): save it as UTF-8 "
                            "(Excel: CSV UTF-8)") from None
        except (OSError, csv.Error) as err:
            raise DataError(f"labels CSV {path} cannot be read: {err}") from None
        numbered = [(i + 1, r) for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
        if len(numbered) < 2:
            raise DataError(f"labels CSV {path} needs a header row and at least one row of data")
        self.header = [h.strip() for h in numbered[0][1]]
        if len(set(self.header)) != len(self.header) or "" in self.header:
            raise DataError(f"labels CSV {path}: the header names a column twice or leaves one unnamed: "
                            f"{','.join(self.header)}")
        self.rows = numbered[1:]
        for line, r in self.rows:
            if len(r) != len(self.header):
                raise DataError(f"{path} line {line}: {len(r)} cells, but the header names {len(self.header)} columns")

    def check(self, name: str, what: str) -> None:
        if name not in self.header:
            raise DataError(f"{what} {name!r}, which is not a column of {self.path} (its columns: "
                            f"{', '.join(self.header)})")

    def values(self, name: str, paths: bool = False) -> list[str]:
        """The column's cells, in NFC (`café` typed, and pasted from a Mac's file name, is one class); `paths`: as
        written (the file's own spelling, `as_spelled_on_disk`). An empty one is refused (an unlabelled row)."""
        k = self.header.index(name)
        cells = [r[k].strip() if paths else same_form(r[k].strip()) for _, r in self.rows]
        for (line, _), cell in zip(self.rows, cells):
            if not cell:
                raise DataError(f"{self.path} line {line}, column {name!r}: empty; every row needs a value "
                                "(drop the row or fill it in)")
        return cells

    def number(self, cell: str) -> float | None:
        """The cell's number (nan and inf included: `numbers` refuses them), or None."""
        if self.delimiter != "," and DECIMAL_COMMA.fullmatch(cell):
            cell = cell.replace(",", ".")
        try:
            return float(cell)
        except ValueError:
            return None

    def numbers(self, name: str) -> list[float]:
        numbers = []
        for (line, _), cell in zip(self.rows, self.values(name)):
            number = self.number(cell)
            if number is None:
                raise DataError(f"{self.path} line {line}, column {name!r}: {cell!r} is not a number "
                                f"(mark the column {name}:class to read it as classes)")
            if not math.isfinite(number):
                raise DataError(f"{self.path} line {line}, column {name!r}: {cell!r} is not a finite number; "
                                "every row needs one (drop the row or fill it in)")
            numbers.append(number)
        return numbers

    def check_items(self, names: list[str]) -> None:
        """Refuse an image (a tuple of images for several image columns) listed on two rows."""
        ks = [self.header.index(n) for n in names]
        keys = zip(*(map(os.path.normpath, self.values(n, True)) for n in names))  # (an empty cell: refused first)
        seen: dict[tuple[str, ...], tuple[int, list[str]]] = {}
        for (line, row), key in zip(self.rows, keys):
            if key not in seen:
                seen[key] = (line, row)
                continue
            first, other = seen[key]
            what = f"image {key[0]}" if len(key) == 1 else f"the images {', '.join(key)}"
            differ = [f"{h} ({a.strip()}, {b.strip()})" for k, (h, a, b) in enumerate(zip(self.header, other, row))
                      if k not in ks and a.strip() != b.strip()]
            if not differ:
                raise DataError(f"{self.path} lines {first} and {line} list {what} twice (the same row); drop one")
            raise DataError(f"{self.path} lines {first} and {line} both list {what}, with different "
                            f"{', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''}; list each "
                            f"{'image' if len(key) == 1 else 'set of images'} once (keep the correct row)")

    def kind_of(self, name: str, kind: str | None, image_allowed: bool) -> str:
        if kind is not None:
            return kind
        cells = self.values(name)
        if any(Path(c).suffix.lower() in IMAGE_SUFFIXES for c in cells):
            return "image"
        numbers = [self.number(c) for c in cells]
        finite = sum(n is not None and math.isfinite(n) for n in numbers)
        share = finite / (finite + numbers.count(None)) if finite else 0.0  # (nan and inf count neither way)
        if share == 1 or (share >= NUMERIC_SHARE and not image_allowed):
            return "number"  # (a few non-numbers among numbers: refused as typos by `numbers`)
        return "number" if image_allowed else "class"


def load_labels_csv(path: str | Path, targets: list[str] | None = None, inputs: list[str] | None = None,
                    val_fraction: float = 0.1, image_size: int | None = None, seed: int = 0,
                    whole: bool = False) -> TabularImages:
    """The images and targets a labels CSV names (see the module's text). `whole`: the rows are to be scored
    (`convolab evaluate` of another CSV than the run's): without a split column, every row is a test row."""
    path = Path(path).expanduser()
    table = _Table(path)
    header = table.header
    input_specs = [_split_spec(s) for s in inputs or []]
    if input_specs:
        image_column = input_specs[0][0]
        table.check(image_column, "`inputs` names")
    else:
        image_column = next((h for h in header if h.lower() in IMAGE_COLUMNS), None)
        image_column = image_column or next((h for h in header if table.kind_of(h, None, True) == "image"), None)
        if image_column is None:
            raise DataError(f"labels CSV {path} has no image column (named {', '.join(IMAGE_COLUMNS)}, or of image "
                            f"files: .png, .jpg...); its columns: {', '.join(header)}; name it with `inputs`")
    image_columns, vector_names = [image_column], []
    for name, kind in input_specs[1:]:
        table.check(name, "`inputs` names")
        (image_columns if table.kind_of(name, kind, True) == "image" else vector_names).append(name)
    table.check_items(image_columns)
    split_column = next((h for h in header if h.lower() == "split"), None)
    used = {*image_columns, *vector_names, split_column}
    specs = ([_split_spec(s) for s in targets] if targets else
             [(h, None) for h in header if h not in used and table.kind_of(h, None, True) != "image"])
    for name, _ in specs:
        table.check(name, "`targets` names")
        if name in used:
            raise DataError(f"`targets` names {name!r}, which is an input or the split column of {path}")
    for flag, names in (("`inputs`", [n for n, _ in input_specs]), ("`targets`", [n for n, _ in specs])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(f"{flag} names {', '.join(map(repr, twice))} twice: name each column once")
    kinds = {name: table.kind_of(name, kind, False) for name, kind in specs}
    bad = [n for n, k in kinds.items() if k == "image"]
    if bad:
        raise DataError(f"`targets` names {', '.join(bad)}, a column of image files: a target is a class or a number, "
                        "not an image (mark it NAME:class if its values are classes)")
    classes = [n for n, k in kinds.items() if k == "class"]
    if not classes:
        raise DataError(f"{path}: no class column among the targets ({', '.join(kinds) or 'none'}); the first "
                        "class column is the main target (mark one NAME:class)")
    for name in kinds:
        if name != classes[0] and (not name.isidentifier() or name == "main"):
            raise DataError(f"column {name!r} of {path} names a model output: rename it to a Python identifier "
                            "other than 'main'")
        if name != classes[0] and name in TAKEN_HEAD_NAMES:
            raise DataError(f"column {name!r} of {path} names a model output, and the model has an attribute "
                            f"{name!r} already: rename the column (e.g. {name}_)")

    if whole and split_column is None:  # every row scored (and the columns described by every row)
        train_index = test_index = torch.arange(len(table.rows))
    else:
        test_mask = _test_rows(table, split_column, val_fraction, classes[0], seed)
        train_index, test_index = torch.nonzero(~test_mask).flatten(), torch.nonzero(test_mask).flatten()
    if len(train_index) == 0 or len(test_index) == 0:
        found = f"{path} yields {len(train_index)} training and {len(test_index)} test rows; both splits need rows"
        if split_column:
            raise DataError(f"{found} (mark some rows {'train' if len(train_index) == 0 else 'test'} in its column "
                            f"{split_column!r})")
        raise EmptySplitError(found, "add a split column of train/test", "more rows of each class",
                              "a labels CSV without one", val_fraction, len(test_index) == 0)
    for name in [] if whole else classes:  # (scored rows: one class will do, and the run's classes count)
        _check_classes(table, name, train_index, test_index, None if targets else classes[0])

    columns, values = {}, {}
    for name in [classes[0], *(n for n in kinds if n != classes[0])]:
        columns[name], values[name] = _target(table, name, kinds[name], train_index)
    vectors = [_target(table, name, "number", train_index) for name in vector_names]
    images = _images(table, image_columns, image_size)
    vector = torch.stack([v for _, v in vectors], 1) if vectors else None
    main = classes[0]

    def split(index: torch.Tensor) -> TableSplit:
        return TableSplit(images[index], values[main][index], {n: v[index] for n, v in values.items() if n != main},
                          None if vector is None else vector[index])

    data = TabularImages(path.name, split(train_index), split(test_index), list(columns[main].classes), columns,
                         tuple(image_columns), tuple(c for c, _ in vectors))
    data.held_out = split_column is None and not whole
    return data


def _delimiter(text: str) -> str:
    """The header line's most frequent delimiter outside quotes (a comma on a tie, or if it holds none)."""
    header = re.sub(r'"[^"]*"', "", next((line for line in text.splitlines() if line.strip()), ""))
    return max(DELIMITERS, key=header.count)


def _test_rows(table: _Table, split_column: str | None, val_fraction: float, main: str, seed: int) -> torch.Tensor:
    """Which rows are test rows: the split column's, else --val-fraction of each main class."""
    if split_column is not None:
        cells = table.values(split_column)
        for (line, _), cell in zip(table.rows, cells):
            if cell.lower() not in SPLIT_NAMES:  # (the split folders' names: train/training, test/testing/val...)
                raise DataError(f"{table.path} line {line}, column {split_column!r}: {cell!r}; give train or test")
        return torch.tensor([SPLIT_NAMES[c.lower()] == "test" for c in cells])
    labels = torch.tensor(np.unique(table.values(main), return_inverse=True)[1].reshape(-1), dtype=torch.int64)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[stratified_split(labels, val_fraction, seed)[1]] = True
    return mask


def _check_classes(table: _Table, name: str, train_index: torch.Tensor, test_index: torch.Tensor,
                   defaulted: str | None = None) -> None:
    """Refuse a class column whose training rows hold one class, or whose test rows hold classes none of them has
    (never taught, or a typo). `defaulted`: the main target, where `targets` was not given and every other column
    became a target too (a note, a source...): the line then says how to learn that column alone."""
    cells = table.values(name)
    taught = {cells[i] for i in train_index.tolist()}
    alone = (f"; if {name!r} is no target (every column but the images and split is one where `targets` is not "
             f"given), give `targets` the columns to learn ({defaulted!r})") if defaulted and name != defaulted else ""
    if len(taught) < 2:
        raise DataError(f"class column {name!r} of {table.path} has one value on its training rows ({min(taught)!r}): "
                        f"nothing to learn{alone}")
    untaught = sorted({cells[i] for i in test_index.tolist()} - taught)
    if untaught:
        raise DataError(f"{table.path}: column {name!r} has classes only in test rows: "
                        f"{', '.join(map(repr, untaught[:5]))}{' ...' if len(untaught) > 5 else ''} (a model is never "
                        f"taught them); fix the spelling, or give them training rows{alone}")


def _target(table: _Table, name: str, kind: str, train_index: torch.Tensor) -> tuple[Column, torch.Tensor]:
    """The column's description and its values: class indices, or numbers standardized by the training rows."""
    if kind == "class":
        cells = table.values(name)
        names = sorted(set(cells))
        index = {c: i for i, c in enumerate(names)}
        return Column(name, "class", tuple(names)), torch.tensor([index[c] for c in cells], dtype=torch.int64)
    numbers = torch.tensor(table.numbers(name), dtype=torch.float64)
    train = numbers[train_index]
    mean = float(train.mean())
    std = float(train.std()) if len(train) > 1 else 0.0
    std = std if std > 0 else 1.0
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise DataError(f"column {name!r} of {table.path}: its numbers are too large for a mean and std "
                        f"(mean {mean:g}, std {std:g}); give them in larger units")
    return Column(name, "number", mean=mean, std=std), ((numbers - mean) / std).float()


def _images(table: _Table, names: list[str], image_size: int | None) -> torch.Tensor:
    """The image files of the columns `names` decoded (at `image_size` if given) into uint8 N x C x H x W,
    an item's images stacked on the channels; grey images become RGB where any image is colour."""
    arrays, colour = [], False
    for name in names:
        for (line, _), cell in zip(table.rows, table.values(name, paths=True)):
            file = as_spelled_on_disk(table.path.parent, cell)  # (NFC typed, NFD on disk: the file meant)
            if why := not_a_file(file):  # (read, /dev/zero filled the memory and a FIFO waited for ever)
                raise DataError(f"{table.path} line {line}, column {name!r}: image {cell} {why}, not an image "
                                "file; give the path of an image file, or drop the row")
            try:
                data = file.read_bytes()
            except FileNotFoundError:
                raise DataError(f"{table.path} line {line}, column {name!r}: image {cell} does not exist "
                                f"(looked for {file})") from None
            except OSError as err:
                raise DataError(f"{table.path} line {line}, column {name!r}: image {cell} cannot be read "
                                f"({err.strerror or err})") from None
            array, mode = decode_image(data, image_size)
            if array is None:
                raise DataError(f"{table.path} line {line}, column {name!r}: image {cell} is not a readable "
                                f"image ({mode})")
            if array.shape[:2] != (arrays[0][2].shape[:2] if arrays else array.shape[:2]):
                first = arrays[0]
                raise DataError(f"{table.path}: images differ in size ({first[1]} is {first[2].shape[1]}x"
                                f"{first[2].shape[0]}, {cell} on line {line} {array.shape[1]}x{array.shape[0]}); "
                                "give `image_size` N to resize every image")
            arrays.append((line, cell, array))
            colour = colour or mode == "RGB"
    tensors = []
    for _, _, a in arrays:
        t = torch.from_numpy(np.array(a))  # (a copy: PIL's array is read-only)
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        tensors.append(t.expand(3, -1, -1) if colour and t.shape[0] == 1 else t)
    stacked = torch.stack(tensors)  # (columns x rows) x C x H x W
    rows = len(table.rows)
    return torch.cat([stacked[k * rows:(k + 1) * rows] for k in range(len(names))], dim=1).contiguous()


__all__ = ["Column", "TableSplit", "TabularImages", "load_labels_csv"]
