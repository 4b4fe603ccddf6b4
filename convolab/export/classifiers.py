"""Prediction and evaluation with an exported model, ONNX, TorchScript or a torch.export program (.pt2): the
preprocessing (channels, size, mean, std) comes from the file's own metadata, so the file is all a user needs
besides ONNX Runtime or PyTorch.
"""
from __future__ import annotations

import numbers
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .._paths import user_path
from ..data import LabelledImages
from ..data.augment import BatchTransform
from ..data.decode import read_input
from ..errors import ConfigError, DataError
from ..training.inference import EvaluationReport, class_mapping, ranked, report_on_data
from .exporters import INPUT_NAME, ORT_MISSING, ExportError, ExportMeta, read_torchscript_meta
from .program import read_program_meta


class ExportedClassifier(ABC):
    """What an exported classifier does for any runtime: uint8 images preprocessed as in training (by the file's
    metadata, `meta`), run in chunks of the model's batch size where it is fixed (`fixed_batch`, else None), top-k
    classes. A runtime's class sets those two and the transform, and gives `_forward`."""

    meta: ExportMeta
    fixed_batch: int | None
    transform: BatchTransform

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """One normalized float32 batch (of the fixed batch size, where there is one) -> its logits."""

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names from the file's metadata, in the order of the logits."""
        return self.meta.classes

    def logits(self, images: torch.Tensor, tta: str | None = None) -> torch.Tensor:
        """uint8 N x C x H x W (any size, any channel count) -> float32 logits N x classes, scored as the run scored
        its test images (`tta` None: its test-time augmentation, the file's `tta`; else "none" or "flip")."""
        return self._scores(self.transform(images), tta)

    def _scores(self, x: torch.Tensor, tta: str | None = None) -> torch.Tensor:
        """Normalized float batch -> logits; with `tta` (None: the run's) "flip", the mean of each image's and its
        mirror image's, as `convolab evaluate` and `predict` score the checkpoint."""
        logits = self._run(x)
        return (logits + self._run(x.flip(3))) / 2 if (tta or self.meta.tta) == "flip" else logits

    def predict_files(self, paths: str | Path | Sequence[str | Path], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (class name, probability) for each image file, best first (one path alone is one image);
        `top_k` a positive integer (more than the classes gives them all)."""
        return list(self.iter_predict_files(paths, top_k))

    def iter_predict_files(self, paths: str | Path | Sequence[str | Path], top_k: int = 5
                           ) -> Iterator[list[tuple[str, float]]]:
        """`predict_files`, image by image; a file that fails to decode: those read before it are scored and given
        first, then its error (as `predict` on a checkpoint gives them; before, an export's lines were lost)."""
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise ConfigError(f"`top_k` must be a positive integer, got {top_k!r}")
        if isinstance(paths, (str, Path)):
            paths = [paths]
        paths = [user_path(p) if str(p).startswith("~") else p for p in paths]  # (as a shell has it)
        # Images may differ in size: each is resized on its own, then they run as one batch.
        meta, x, failure = self.meta, [], None
        for p in paths:
            try:
                x.append(self.transform(read_input(p, meta.preprocess, meta.image_size, meta.in_chans,
                                                   crop_pct=meta.crop_pct, interpolation=meta.interpolation,
                                                   crop_mode=meta.crop_mode)[None]))
            except DataError as err:
                failure = err
                break
        if x:
            probs = self._scores(torch.cat(x)).softmax(1)
            values, indices = ranked(probs, min(int(top_k), probs.shape[1]))
            for vs, ids in zip(values, indices, strict=True):
                yield [(self.classes[i], float(v)) for v, i in zip(vs.tolist(), ids.tolist(), strict=True)]
        if failure is not None:
            raise failure

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float batch -> logits, in chunks of the model's batch size if it is fixed (the last padded)."""
        step = self.fixed_batch or max(1, len(x))
        out = []
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            if self.fixed_batch and len(chunk) < step:  # pad the last chunk to the fixed batch
                chunk = torch.cat([chunk, chunk.new_zeros(step - len(chunk), *chunk.shape[1:])])
            out.append(self._forward(chunk)[:len(x) - start])
        return torch.cat(out) if out else torch.empty(0, len(self.classes))


class OnnxClassifier(ExportedClassifier):
    """An exported classifier run by ONNX Runtime on uint8 images, preprocessed as in training."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError(ORT_MISSING) from None
        path = user_path(path)
        if not path.is_file():
            raise ExportError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors for a bad file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"{path} is not a readable ONNX model ({first[:160]})") from None
        self.meta = meta = ExportMeta.from_strings(self.session.get_modelmeta().custom_metadata_map, path)
        problem = _misfit(meta, self.session.get_inputs()[0].shape, self.session.get_outputs()[0].shape)
        if problem:
            raise ExportError(f"{path}: its metadata do not fit its model: {problem}; export the model again with "
                              "`convolab export` (or export_onnx with meta=None, or an ExportMeta that fits it)")
        batch = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None  # None: any batch size
        self.transform = BatchTransform(meta.in_chans, meta.image_size, meta.mean, meta.std)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: x.numpy()})[0])


FIXED_BATCH = re.compile(r"exported for batches of (\d+) images")  # _FixedBatch's refusal, as the file words it


class _ModuleClassifier(ExportedClassifier):
    """An export PyTorch runs as a module (TorchScript, a torch.export program): its first run, on a probe batch of
    the metadata's input, checks that the file and its metadata fit (a misfit: one line naming the --format)."""

    module: Any

    def _refused(self, path: str | Path, fmt: str, err: BaseException) -> ExportError:
        """The line for a module that does not run on the input its metadata describe."""
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        return ExportError(f"{path}: its model does not run on the input its metadata describe ({self.meta.in_chans}x"
                           f"{'x'.join(map(str, self.meta.image_size))}: {first}); export the model again with "
                           f"`convolab export --format {fmt}`")

    def _fits(self, path: str | Path, fmt: str, out: torch.Tensor) -> None:
        """The probe's output `out` checked against the metadata's classes; the transform set."""
        meta = self.meta
        if out.ndim != 2 or out.shape[1] != len(meta.classes):
            raise ExportError(f"{path}: its metadata do not fit its model: they list {len(meta.classes)} classes, the "
                              f"model gives outputs of shape {tuple(out.shape)}; export the model again with "
                              f"`convolab export --format {fmt}`")
        self.transform = BatchTransform(meta.in_chans, meta.image_size, meta.mean, meta.std)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x).float()


class TorchScriptClassifier(_ModuleClassifier):
    """An exported classifier run by TorchScript (`torch.jit.load`, no convolab model class needed) on uint8
    images, preprocessed as in training; `threads`: torch's intra-op threads for this process, if given."""

    def __init__(self, path: str | Path, threads: int | None = None):
        path = user_path(path)
        self.module, self.meta = read_torchscript_meta(path)
        if threads:
            torch.set_num_threads(threads)
        probe = torch.zeros(1, self.meta.in_chans, *self.meta.image_size)
        self.fixed_batch = None
        try:
            out = self._forward(probe)
        except Exception as err:  # noqa: BLE001  torch.jit.Error: a fixed batch's file says its size; else a misfit
            fixed = FIXED_BATCH.search(str(err))
            if fixed is None:
                raise self._refused(path, "torchscript", err) from None
            self.fixed_batch = int(fixed.group(1))
            out = self._forward(probe.expand(self.fixed_batch, *probe.shape[1:]).contiguous())
        self._fits(path, "torchscript", out)


class ProgramClassifier(_ModuleClassifier):
    """An exported classifier run by a `torch.export` program (a `.pt2` archive, `torch.export.load`, no convolab
    model class needed) on uint8 images, preprocessed as in training; `threads` as for TorchScriptClassifier."""

    def __init__(self, path: str | Path, threads: int | None = None):
        path = user_path(path)
        self.module, self.meta, self.fixed_batch = read_program_meta(path)
        if threads:
            torch.set_num_threads(threads)
        try:  # (a fixed batch: the only size its guards take)
            out = self._forward(torch.zeros(self.fixed_batch or 1, self.meta.in_chans, *self.meta.image_size))
        except Exception as err:  # noqa: BLE001  the program's guards (its input shape), of several kinds
            raise self._refused(path, "pt2", err) from None
        self._fits(path, "pt2", out)


def _misfit(meta: ExportMeta, inputs: list, outputs: list) -> str:
    """What of `meta` does not fit the graph's input shape N x C x H x W and output shape N x classes (its
    sizes ints, or names for a dynamic axis), or "": a file whose metadata were written for another model."""
    problems = []
    if len(inputs) == 4 and all(isinstance(n, int) for n in inputs[1:]) \
            and (meta.in_chans, *meta.image_size) != tuple(inputs[1:]):
        problems.append(f"they say inputs of {meta.in_chans}x{'x'.join(map(str, meta.image_size))}, the model takes "
                        f"{'x'.join(map(str, inputs[1:]))}")
    if len(meta.mean) != meta.in_chans or len(meta.std) != meta.in_chans:
        problems.append(f"their mean and std have {len(meta.mean)} and {len(meta.std)} values for {meta.in_chans} "
                        "input channel(s)")
    if len(outputs) == 2 and isinstance(outputs[1], int) and outputs[1] != len(meta.classes):
        problems.append(f"they list {len(meta.classes)} classes, the model gives {outputs[1]} outputs")
    return "; ".join(problems)


def export_reading(meta: ExportMeta) -> dict[str, Any]:
    """What `training.inference.load_data_for` reads of a checkpoint, from an export's metadata: its input size
    (image folders are squashed to it as they are decoded, as for any data but a run's own), and the centre crop
    of a run on streamed photos (its fraction and resampling). No run options: the data are read whole."""
    return {"image_size": list(meta.image_size), "crop_pct": meta.crop_pct, "interpolation": meta.interpolation,
            "preprocess": "center-crop" if meta.preprocess == "center-crop" else "resize"}


def evaluate_exported(classifier: ExportedClassifier, data: LabelledImages, tta: str | None = None,
                      batch_size: int = 256) -> EvaluationReport:
    """Top-1, top-5, per-class accuracy and the confusion matrix of an exported model on the test split of `data`
    (read as `export_reading` says), scored as its run scored its test images (`tta` None: the file's; "none",
    "flip"): `convolab evaluate FILE.onnx --data ...`, which checks an export on the images it will meet. The
    data's classes are matched to the file's by name; a model of more classes is reported on the data's."""
    classes = list(classifier.classes)
    mapping = class_mapping(data.classes, classes, "exported model")
    logits, labels = [torch.empty(0, len(classes))], [torch.empty(0, dtype=torch.int64)]
    with tqdm(total=len(data.test), unit="img", desc="evaluating", leave=False, dynamic_ncols=True,
              file=sys.stderr, disable=None) as bar:
        for images, y, _ in data.decoded_as(int(classifier.meta.image_size[0])).eval_batches(data.test, batch_size):
            logits.append(classifier.logits(images, tta))
            labels.append(mapping[y])
            bar.update(len(y))
    return report_on_data(torch.cat(logits), torch.cat(labels), classes, data.classes, mapping)


def predict_onnx(model_path: str | Path, images: str | Path | Sequence[str | Path],
                 top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) per image file from an ONNX model written by `convolab export` (or
    `export_onnx`); `images` a list of paths, or one path (a list of one result)."""
    return OnnxClassifier(model_path).predict_files(images, top_k)


def predict_torchscript(model_path: str | Path, images: str | Path | Sequence[str | Path],
                        top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) per image file from a TorchScript model written by `convolab export
    --format torchscript` (or `export_torchscript`); `images` as for `predict_onnx`."""
    return TorchScriptClassifier(model_path).predict_files(images, top_k)


def predict_program(model_path: str | Path, images: str | Path | Sequence[str | Path],
                    top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) per image file from a torch.export program written by `convolab export
    --format pt2` (or `export_program`); `images` as for `predict_onnx`."""
    return ProgramClassifier(model_path).predict_files(images, top_k)
