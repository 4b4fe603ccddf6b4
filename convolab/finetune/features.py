"""Feature extraction: a trained model's pooled penultimate features of every image, for other tools."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_write
from .._paths import user_path, writable_output, written
from ..data import ImageData, LabelledImages, TabularImages
from ..errors import ConfigError
from ..training.inference import load_trained_model, uint8_batches


@torch.no_grad()
def extract_features(checkpoint: str | Path | dict, data: ImageData, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """`forward_head(pre_logits=True)` of every train and test image, with labels and class names (`train_features`,
    `train_labels`, `test_...`; of data that keep a test split unseen, a folder's val/ beside its test/, also
    `val_...`: the test split scored each epoch, and `test_...` the one kept unseen); for a labels CSV, each other
    target too: `{split}_target_{column}` (class indices, with `target_{column}_classes`, or numbers in the column's
    own units)."""
    if not isinstance(data, LabelledImages):  # (a name or a folder given for it: before the checkpoint is read)
        source = repr(data) if isinstance(data, str) else "NAME_OR_FOLDER"
        raise ConfigError(f"`data` must be loaded data, got {type(data).__name__} {data!r:.60}; give "
                          f"load_data({source:.60}) (convolab.data.load_data)")
    loaded = load_trained_model(checkpoint, device)
    model, transform = loaded.model, loaded.transform
    arrays: dict[str, np.ndarray] = {}
    splits = [("train", data.train), ("test", data.test)] if data.unseen_test is None else \
        [("train", data.train), ("val", data.test), ("test", data.unseen_test)]
    for split_name, split in splits:
        chunks, labels = [], []
        for images, y in uint8_batches(data, split, batch_size, int(loaded.checkpoint["image_size"][0])):
            x = transform(images.to(device))
            chunks.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
            labels.append(y)
        width = getattr(model, "num_features", 0)
        features = torch.cat(chunks) if chunks else torch.empty(0, width)
        arrays[f"{split_name}_features"] = features.flatten(1).numpy()
        arrays[f"{split_name}_labels"] = (torch.cat(labels) if labels else split.labels[:0]).numpy()
        if isinstance(data, TabularImages):  # the other targets, in the order of the features
            for name, values in split.targets.items():
                column = data.columns[name]
                arrays[f"{split_name}_target_{name}"] = (values.double() * column.std + column.mean).numpy() \
                    if column.kind == "number" else values.numpy()
    arrays["classes"] = np.array(data.classes)
    if isinstance(data, TabularImages):
        for name, column in data.columns.items():
            if column.kind == "class" and name != data.main_column:
                arrays[f"target_{name}_classes"] = np.array(column.classes)
    arrays["model_name"] = np.array(str(loaded.checkpoint["model_name"]))
    return arrays


def save_features(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays as one .npz file, atomically (a reader never sees half a file); `path` a file in a folder that
    exists (a folder, or one under a missing folder, is refused in one line before anything is written)."""
    path = writable_output(user_path(path), "`path`", "file", example="features.npz")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a temporary name
            np.savez(f, **arrays)

    with written(path, "`path`", "file"):  # (a disk gone read-only meanwhile: one line)
        atomic_write(path, write)


__all__ = ["extract_features", "save_features"]
