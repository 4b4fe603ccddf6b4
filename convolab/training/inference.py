"""Using a trained checkpoint: rebuild its model, evaluate it on a data set, classify image files."""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_write, write_together, write_utf8
from .._paths import making, user_path
from ..data import DATA_SETS, LabelledImages, Split, StreamSplit
from ..data.archive import printable
from ..data.augment import AugmentConfig, BatchTransform
from ..data.decode import CROP_PCT, read_input
from ..data.names import same_form
from ..data.torchvision_sets import plain_class_name
from ..errors import CheckpointError, ConfigError, DataError, way_on
from .checkpoint import checkpoint_model, load_checkpoint
from .device import resolve_amp
from .evaluation import evaluate, scored_outputs
from .metrics import fonts, marked

log = logging.getLogger("convolab")


@dataclass
class LoadedModel:
    """A trained model ready to score images (`load_trained_model`): the network in eval mode, the checkpoint it was
    read from, and the transform its run gave each batch."""

    model: nn.Module
    checkpoint: dict
    transform: BatchTransform

    @property
    def classes(self) -> list[str]:
        """The class names of the model's outputs, in order."""
        return list(self.checkpoint["classes"])


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """The model of a checkpoint (or run folder) in eval mode, with the preprocessing it was trained with."""
    ckpt = load_checkpoint(path)
    # (a record read already, e.g. by `features`, is named by its source: formatted, the dict filled 1,000 lines)
    label = str(ckpt.get("source", "the checkpoint")) if isinstance(path, dict) else path
    return as_trained(checkpoint_model(ckpt, label), ckpt, label, device)


def as_trained(model: nn.Module, ckpt: dict, label: Any, device: str | torch.device = "cpu") -> LoadedModel:
    """`model`, holding `ckpt`'s weights, in eval mode on `device` (it must give numbers), preprocessing as trained."""
    model.to(device).eval()
    check_finite_outputs(model, ckpt, label)
    return LoadedModel(model, ckpt, BatchTransform(int(ckpt["in_chans"]), tuple(ckpt["image_size"]),
                                                   tuple(ckpt["mean"]), tuple(ckpt["std"]), AugmentConfig()))


def ranked(scores: torch.Tensor, k: int) -> torch.return_types.topk:
    """The k highest scores of each row (k at most the row's length) and their classes, best first; classes of
    equal scores in class order, so the first is `argmax`'s, the class training's accuracy counts (`Tensor.topk`
    orders ties as it finds them: [1, 1, 0, 0, 0, 0].topk(5) begins with class 1)."""
    k = min(k, scores.shape[-1])
    values, indices = scores.sort(dim=-1, descending=True, stable=True)
    return torch.return_types.topk((values[..., :k], indices[..., :k]))


@torch.no_grad()
def check_finite_outputs(model: nn.Module, ckpt: dict, path: str | Path) -> None:
    """Refuse, in one line, a model whose outputs on a standardized random image are NaN or inf (finite weights
    can diverge so): scored, its argmax over NaN rows is one class for every image, and nothing says so."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(1, int(ckpt["in_chans"]), *map(int, ckpt["image_size"]), generator=torch.Generator().manual_seed(0))
    if not finite_outputs(model(x.to(device))):
        raise CheckpointError(f"{path}: its model outputs NaN or inf (its weights diverged: a run whose loss became "
                              "NaN?); give another checkpoint, e.g. an earlier epoch's")


def finite_outputs(out: Any) -> bool:
    """Whether a model's outputs (a tensor, or a dict, tuple or list of them: its heads) are all finite: not NaN,
    not inf. The one test of a diverged model, which evaluate, predict and export each refuse in a line of their own."""
    outputs = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else (out,)
    return all(bool(torch.isfinite(o).all()) for o in outputs if isinstance(o, torch.Tensor))


@dataclass
class EvaluationReport:
    """What `evaluate_checkpoint` gives: top-1 and top-5 accuracy, each class's accuracy and the confusion matrix of
    the images scored (`write` puts them in per_class.csv, confusion.csv and confusion.png)."""

    classes: list[str]
    top1: float
    top5: float
    per_class: list[float]
    confusion: np.ndarray  # rows: true class, columns: predicted class
    count: int

    @classmethod
    def of(cls, logits: torch.Tensor, labels: torch.Tensor, classes: list[str],
           reported: tuple[list[str], torch.Tensor] | None = None) -> EvaluationReport:
        """Top-1 and top-5 accuracy (correct / images, the float training counts), per-class accuracy and the
        confusion matrix of `logits` against `labels`; `reported`: the classes the matrix shows and each of
        `classes`' position among them (several of the model's classes counted as one)."""
        topk = ranked(logits, 5).indices  # (classes of equal scores, as bf16 logits often are: argmax's choice first)
        n_images = len(labels) or float("nan")
        top1 = (topk[:, 0] == labels).sum().item() / n_images
        top5 = (topk == labels[:, None]).any(1).sum().item() / n_images
        predicted = topk[:, 0]
        if reported is not None:
            classes, position = reported
            labels, predicted = position[labels], position[predicted]
        n = len(classes)
        confusion = torch.bincount(labels * n + predicted, minlength=n * n).reshape(n, n).numpy()
        totals = confusion.sum(1)
        per_class = [float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i in range(n)]
        # (a folder name in bytes that are not UTF-8 as \xe9, as messages write it: printed and written as text)
        return cls([printable(c) for c in classes], top1, top5, per_class, confusion, len(labels))

    def write(self, out_dir: str | Path) -> list[Path]:
        """per_class.csv, confusion.csv and confusion.png in `out_dir`, as one set: all written to temporary
        files, then renamed (an interrupt while the picture draws leaves the old three, which agree)."""
        out = user_path(out_dir)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["class", "accuracy", "images"])
        for name, acc, n in zip(self.classes, self.per_class, self.confusion.sum(1)):
            writer.writerow([name, f"{acc:.4f}" if n else "", int(n)])  # (a class without images: no accuracy)
        per_class = buf.getvalue()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["true \\ predicted", *self.classes])
        for name, row in zip(self.classes, self.confusion):
            writer.writerow([name, *map(int, row)])
        fig = confusion_figure(self.confusion, self.classes, f"top-1 {self.top1:.4f}")
        with making(out):  # (a write that fails, a full disk, leaves no empty folder behind)
            write_together([(out / "confusion.png", lambda tmp: fig.savefig(tmp, format="png", dpi=DPI)),
                            (out / "per_class.csv", lambda tmp: write_utf8(tmp, per_class)),
                            (out / "confusion.csv", lambda tmp: write_utf8(tmp, buf.getvalue()))])
        return [out / "per_class.csv", out / "confusion.csv", out / "confusion.png"]


def listed(names: list[str], most: int) -> str:
    """The first `most` names, then how many more there are."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def class_mapping(data_classes: list[str], model_classes: list[str], what: str = "checkpoint") -> torch.Tensor:
    """Index of each data class among the model's classes, matched by name (a run on MNIST before its classes
    were named as the digits are keeps torchvision's "0 - zero": the same class as "0"; names compared in NFC, so
    that a `café` a Mac named in NFD, in a checkpoint of an older version, is the `café` typed); `what` holds them."""
    model_classes = [plain_class_name(c) for c in model_classes]
    known = [same_form(c) for c in model_classes]
    missing = [c for c in data_classes if same_form(c) not in known]
    if missing:
        raise DataError(f"the data has {len(missing)} of {len(data_classes)} classes the {what} does not know: "
                        f"{listed(missing, 5)}; the {what}'s {len(model_classes)} classes are "
                        f"{listed(model_classes, 12)}")
    return torch.tensor([known.index(same_form(c)) for c in data_classes])


def run_config(checkpoint: dict) -> dict:
    """The options the checkpoint's run was trained with (its config.json); {} for published weights."""
    return json.loads(checkpoint.get("config") or "{}")


def squashed_size(checkpoint: dict) -> tuple[int, int] | None:
    """The (height, width) a run's image files were squashed to as they were decoded (--image-size on an image
    folder, tar or labels CSV: PIL's bilinear resize, to uint8), which reading one image must repeat to see
    what training saw; None where the run resized per batch (a named data set, or images already of the size)
    or read centre crops (streamed photos, published weights)."""
    config = run_config(checkpoint)
    if checkpoint.get("preprocess", "resize") != "resize" or not config.get("image_size") \
            or config.get("data") in DATA_SETS:
        return None
    return int(checkpoint["image_size"][0]), int(checkpoint["image_size"][1])


def preprocess_of(checkpoint: dict) -> str:
    """How the run's image files became its inputs, as `read_input` repeats it and an ONNX export records it:
    "squash" (see `squashed_size`), "center-crop" (streamed photos, published weights) or "resize"."""
    return "squash" if squashed_size(checkpoint) else str(checkpoint.get("preprocess", "resize"))


def input_reading(checkpoint: dict) -> dict[str, Any]:
    """How `read_input` reads one image as the checkpoint's run read its files, by the names `read_input` and
    `ExportMeta` share: `preprocess_of`, the centre crop's fraction and resampling (published weights: their own)
    and the mode a stream decoded in ("": none recorded). `predict` reads so, and an ONNX export records it."""
    return {"preprocess": preprocess_of(checkpoint), "crop_pct": float(checkpoint.get("crop_pct", CROP_PCT)),
            "interpolation": str(checkpoint.get("interpolation", "bilinear")),
            "crop_mode": str(checkpoint.get("crop_mode") or "")}


def uint8_batches(data: LabelledImages, split: Split | StreamSplit, batch_size: int, size: int | None = None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) of a split in order: sliced from memory, or streamed from the files
    (centre crops at `size`; unreadable files named, or skipped with --skip-bad-images)."""
    for images, labels, _ in data.decoded_as(size).eval_batches(split, batch_size):
        yield images, labels


OTHER_CLASSES = "(other classes)"  # the predictions outside the data's classes, for a model that knows more


def run_tta(checkpoint: dict) -> str:
    """The test-time augmentation the checkpoint's run scored its test images with (none, flip)."""
    return str(run_config(checkpoint).get("tta") or "none")


def run_amp(checkpoint: dict, device: torch.device) -> torch.dtype | None:
    """The precision the checkpoint's run scored its test images in, on a device of this kind: its --amp
    (auto: bf16 on CUDA, full precision on the CPU); an fp16 run on a device without fp16: full precision."""
    mode = str(run_config(checkpoint).get("amp") or "off")
    return None if mode == "fp16" and device.type != "cuda" else resolve_amp(mode, device)


def evaluate_checkpoint(loaded: LoadedModel, data: LabelledImages, tta: str | None = None) -> EvaluationReport:
    """Top-1, top-5, per-class accuracy and the confusion matrix on the test split of `data`, scored as the
    run's training scored its test images (in its precision; `tta`: none or flip; None: the run's); a model of
    more classes than the data's is reported on the data's classes, its other predictions counted together."""
    classes = loaded.classes
    mapping = class_mapping(data.classes, classes)
    batch_size = max(256, int(run_config(loaded.checkpoint).get("batch_size") or 256))  # as evaluate_run's
    label_chunks: list[torch.Tensor] = []

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for images, labels, index in data.decoded_as(int(loaded.checkpoint["image_size"][0])).eval_batches(
                data.test, batch_size):
            label_chunks.append(mapping[labels])
            yield images, label_chunks[-1], index

    device = next(loaded.model.parameters()).device
    result = evaluate(loaded.model, None, mapping[data.test.labels], loaded.transform, batch_size, device,
                      run_amp(loaded.checkpoint, device), return_logits=True, batches=batches(),
                      tta=run_tta(loaded.checkpoint) if tta is None else tta)
    logits = result["logits"] if label_chunks else torch.empty(0, len(classes))
    labels = torch.cat(label_chunks) if label_chunks else torch.empty(0, dtype=torch.int64)
    return report_on_data(logits, labels, classes, data.classes, mapping)


def report_on_data(logits: torch.Tensor, labels: torch.Tensor, classes: list[str], data_classes: list[str],
                   mapping: torch.Tensor) -> EvaluationReport:
    """The report of a model of `classes` scored on data of `data_classes` (`labels`: the model's indices;
    `mapping`: `class_mapping`'s): on the data's classes where the model knows more (ImageNet weights on a few of
    its classes), its predictions of the others counted together as one."""
    reported = None
    if len(data_classes) < len(classes):
        position = torch.full((len(classes),), len(data_classes), dtype=torch.int64)
        position[mapping] = torch.arange(len(data_classes))
        reported = [*data_classes, OTHER_CLASSES], position
    return EvaluationReport.of(logits, labels, classes, reported)


DPI = 100
MAX_INCHES = 16.0  # the figure's side at most, whatever the class count (1,600 pixels at DPI)
NAME_LENGTH = 24  # characters of a class name drawn (all of it in the CSVs)
COUNTS_UP_TO = 30  # classes: the images of each cell written in it


def drawn_names(classes: list[str]) -> list[str]:
    """Class names as the picture draws them: long ones shortened in the middle; where the font lacks a
    character (中文 in DejaVu Sans) it is drawn as ? (no warning per glyph), and where names then look alike,
    each is prefixed with its index (its row of confusion.csv)."""
    names = marked(classes)
    missing = names != list(classes)
    half = (NAME_LENGTH - 1) // 2
    names = [f"{n[:half]}\u2026{n[-(NAME_LENGTH - 1 - half):]}" if len(n) > NAME_LENGTH else n for n in names]
    if missing or len(set(names)) < len(names):
        names = [f"{i}: {n}" for i, n in enumerate(names)]
    return names


def confusion_figure(confusion: np.ndarray, classes: list[str], title: str = "") -> Any:
    """The confusion matrix as a figure of at most MAX_INCHES a side: each cell coloured by its share of the
    true class's images, named classes on both axes (every k-th where all would not fit at 6 points), and the
    counts written in the cells of a matrix of up to COUNTS_UP_TO classes."""
    from matplotlib.figure import Figure  # (no pyplot: the caller's backend and figures are left alone)

    n = len(classes)
    names = drawn_names(classes)
    matrix = min(max(3.0, 0.45 * n), 12.0)  # inches of the matrix itself
    cell = matrix * 72 / max(n, 1)  # points
    fontsize = min(9.0, max(6.0, cell / 1.3))
    every = max(1, math.ceil(fontsize * 1.3 / cell))
    margin = max((len(s) for s in names), default=1) * fontsize * 0.62 / 72 + 0.7  # the names' room
    fig = Figure(figsize=(min(MAX_INCHES, matrix + margin + 1.6), min(MAX_INCHES, matrix + margin + 0.9)),
                 layout="constrained")
    ax = fig.subplots()
    rates = (confusion / np.maximum(confusion.sum(1, keepdims=True), 1)).astype(np.float32)  # (halves the work)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")  # (not smoothed: fast)
    shown = range(0, n, every)
    # (parse_math off, here and in the title: a class `under_$5_to_$10` was parsed as mathtext, a traceback)
    font = fonts("".join(names))  # (names in Chinese: in an installed font that has it)
    ax.set_xticks(shown, [names[i] for i in shown], rotation=90, fontsize=fontsize, parse_math=False, **font)
    ax.set_yticks(shown, [names[i] for i in shown], fontsize=fontsize, parse_math=False, **font)
    counts = n <= COUNTS_UP_TO
    if counts:
        for i, j in zip(*np.nonzero(confusion)):
            ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    nth = f"{every}{ordinal_suffix(every)}"
    named = f" (every {nth} class named; all in confusion.csv)" if every > 1 else ""
    ax.set(xlabel=f"predicted{named}", ylabel="true")
    ax.set_title(f"{title}\n" + ("numbers: images; " if counts else "") + "colour: share of the true class",
                 parse_math=False, **fonts(title))
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's images (row-normalised)")
    return fig


def ordinal_suffix(n: int) -> str:
    """English: 1st, 2nd, 3rd, 4th, 11th-13th, 21st, 112th."""
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def plot_confusion(confusion: np.ndarray, classes: list[str], path: Path, title: str = "") -> None:
    fig = confusion_figure(confusion, classes, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


Prediction = tuple[list[tuple[str, float]], dict[str, tuple[str, float | None]]]


@torch.no_grad()
def in_units(standardized: float, mean: float, std: float) -> str:
    """A numeric output in its column's units, to a hundredth of the column's spread (not to 4 significant
    digits, which turned 1,000,000,060 into 1e+09)."""
    value = standardized * std + mean
    decimals = max(0, math.ceil(-math.log10(std / 100))) if std > 0 else 4
    return f"{value:.{decimals}f}"


def predict_targets(loaded: LoadedModel, paths: list[str | Path] | str | Path, topk: int = 5) -> list[Prediction]:
    """For each image file, preprocessed as in training: the main target's top-k (class name, probability), and
    each other target of a labels CSV's model: {name: (class, probability)} or {name: (number in the column's
    units, None)}."""
    return list(iter_predictions(loaded, paths, topk))


def iter_predictions(loaded: LoadedModel, paths: list[str | Path] | str | Path, topk: int = 5
                     ) -> Iterator[Prediction]:
    """`predict_targets`, each image as it is scored (a command prints it at once), scored `PREDICT_BATCH` files at
    a time (a batch of one took twice the compute); the model is checked at the call, each image when its turn
    comes (one that fails to decode: those read before it are scored and given first, then its error). One path alone
    is a list of one; `~` is expanded."""
    if isinstance(topk, bool) or not isinstance(topk, numbers.Integral) or topk < 1:  # (0 would give no class,
        raise ConfigError(f"`topk` must be a positive integer, got {topk!r}")  # silently; numpy's ints are taken)
    topk = int(topk)
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths  # (one path, not a list of its characters)
    classes = loaded.classes
    k = min(topk, len(classes))
    ckpt = loaded.checkpoint
    table = ckpt.get("table", {})
    inputs = table.get("inputs", [])
    if len(inputs) > 1:  # a labels CSV's model of several inputs
        instead = way_on("convolab evaluate RUN --data labels.csv", "evaluate_table(loaded, load_data(CSV))")
        raise DataError(f"the checkpoint's model takes {', '.join(inputs)} of each item; predict reads one image "
                        f"a file: evaluate it on a labels CSV instead ({instead})")
    others = dict(list(table.get("targets", {}).items())[1:])  # (the first is the main target)
    reading = input_reading(ckpt)  # e.g. files PIL resized to --image-size: the same resize, not the batch's
    # (a generator of its own: the checks above are made at the call; no grad mode is held across a yield)
    return _batched_predictions(loaded, [user_path(p) if str(p).startswith("~") else p for p in paths], reading,
                                others, k)


PREDICT_BATCH = 32  # image files scored at a time by `predict`


def _batched_predictions(loaded: LoadedModel, paths: list[str | Path], reading: dict[str, Any], others: dict,
                         k: int) -> Iterator[Prediction]:
    ckpt = loaded.checkpoint
    for start in range(0, len(paths), PREDICT_BATCH):
        images, failure = [], None
        for path in paths[start:start + PREDICT_BATCH]:
            try:
                images.append(read_input(path, image_size=ckpt["image_size"], in_chans=int(ckpt["in_chans"]),
                                         **reading))
            except Exception as err:  # noqa: BLE001  those read before it are scored first, then it is raised
                failure = err
                break
        yield from _predictions(loaded, images, others, k)
        if failure is not None:
            raise failure


@torch.no_grad()
def _predictions(loaded: LoadedModel, images: list[torch.Tensor], others: dict, k: int) -> list[Prediction]:
    """Each of `images` (uint8 C x H x W, as `read_input` gives them) scored as evaluate scores the run's test
    images: in its precision, with its test-time augmentation."""
    if not images:
        return []
    ckpt, classes = loaded.checkpoint, loaded.classes
    device = next(loaded.model.parameters()).device
    # (each resized to the model's input by the transform alone: a run that read files at their own sizes
    # gives images of several sizes)
    x = torch.cat([loaded.transform(image[None].to(device)) for image in images])
    outputs = scored_outputs(loaded.model, x, bool(others), run_tta(ckpt), device, run_amp(ckpt, device))
    values, indices = ranked(outputs["main"].float().softmax(1).cpu(), k)
    found = {name: outputs[name].float().cpu() for name in others}
    predictions = []
    for row in range(len(images)):
        extra: dict[str, tuple[str, float | None]] = {}
        for name, target in others.items():
            out = found[name][row]
            if target["kind"] == "class":
                p = out.softmax(0)
                extra[name] = (target["classes"][int(p.argmax())], float(p.max()))
            else:
                extra[name] = (in_units(float(out[0]), target["mean"], target["std"]), None)
        predictions.append(([(classes[i], float(v)) for v, i in zip(values[row].tolist(), indices[row].tolist())],
                            extra))
    return predictions
