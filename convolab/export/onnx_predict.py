"""Prediction with an exported ONNX model: the preprocessing (channels, size, mean, std) comes
from the file's own metadata, so the .onnx file is all a user needs besides ONNX Runtime.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.augment import BatchTransform
from ..data.decode import read_input
from ..errors import ConfigError
from ..training.inference import ranked
from .exporters import INPUT_NAME, ORT_MISSING, ExportError, ExportMeta


class OnnxClassifier:
    """An exported classifier run by ONNX Runtime on uint8 images, preprocessed as in training."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError(ORT_MISSING) from None
        path = Path(path)
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

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W (any size, any channel count) -> float32 logits N x classes."""
        return self._run(self.transform(images))

    def predict_files(self, paths: str | Path | Sequence[str | Path], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (class name, probability) for each image file, best first (one path alone is one image);
        `top_k` a positive integer (more than the classes gives them all)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
        if isinstance(paths, (str, Path)):
            paths = [paths]
        # Images may differ in size: each is resized on its own, then they run as one batch.
        meta = self.meta
        x = [self.transform(read_input(p, meta.preprocess, meta.image_size, meta.in_chans, crop_pct=meta.crop_pct,
                                       interpolation=meta.interpolation, crop_mode=meta.crop_mode)[None])
             for p in paths]
        if not x:
            return []
        probs = self._run(torch.cat(x)).softmax(1)
        k = min(top_k, probs.shape[1])
        values, indices = ranked(probs, k)
        return [[(self.classes[i], float(v)) for v, i in zip(vs.tolist(), ids.tolist(), strict=True)]
                for vs, ids in zip(values, indices, strict=True)]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized float batch -> logits, in chunks of the model's batch size if it is fixed."""
        arrays, step = x.numpy(), self.fixed_batch or max(1, len(x))
        out = []
        for start in range(0, len(arrays), step):
            chunk = arrays[start:start + step]
            if self.fixed_batch and len(chunk) < step:  # pad the last chunk to the fixed batch
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            out.append(self.session.run(None, {INPUT_NAME: chunk})[0][:len(arrays) - start])
        return torch.from_numpy(np.concatenate(out)) if out else torch.empty(0, len(self.classes))


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


def predict_onnx(model_path: str | Path, images: str | Path | Sequence[str | Path],
                 top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) per image file from an ONNX model written by `convolab export` (or
    `export_onnx`); `images` a list of paths, or one path (a list of one result)."""
    return OnnxClassifier(model_path).predict_files(images, top_k)
