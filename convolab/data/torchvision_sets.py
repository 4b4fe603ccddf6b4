"""MNIST, Fashion-MNIST and CIFAR-10/100 through torchvision, held in memory as uint8 tensors."""
from __future__ import annotations

import errno
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import ImageData, Split

# Why a download can fail here, whatever the network: the data folder cannot be written
LOCAL_FAULTS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR, errno.ENOSPC, errno.EDQUOT)

_SETS = {
    "mnist": ("MNIST", "MNIST/raw"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "cifar-100-python"),
}
TORCHVISION_SETS = tuple(_SETS)
MNIST_NAME = re.compile(r"(\d) - [a-z]+")  # torchvision's names of MNIST's classes: "0 - zero"


def plain_class_name(name: str) -> str:
    """A class's name, torchvision's "0 - zero" of MNIST as "0" (as mnist5k and digits name it)."""
    digit = MNIST_NAME.fullmatch(name)
    return digit.group(1) if digit else name


def _split(dataset) -> Split:
    data = dataset.data
    data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    images = torch.from_numpy(data)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # N x C x H x W
    return Split(images.contiguous(), torch.as_tensor(np.asarray(dataset.targets)))


def load_torchvision(name: str, data_dir: str | Path, download: bool = False) -> ImageData:
    """Load a torchvision data set from `data_dir` (downloading it there if `download`)."""
    import torchvision.datasets as tvd

    class_name, sub = _SETS[name]
    cls = getattr(tvd, class_name)
    root = Path(data_dir).expanduser()
    try:
        train = cls(root=str(root), train=True, download=download)
        test = cls(root=str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        # torchvision's "Dataset not found or corrupted", or a download that failed (its message spans lines:
        # each mirror tried, each error)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(":")
        if download and isinstance(err, OSError) and err.errno in LOCAL_FAULTS:  # (the network is not to blame)
            raise DataError(f"{name} could not be downloaded into {root / sub}: that folder cannot be written "
                            f"({err.strerror}); give `data_dir` a writable folder") from None
        if download:
            raise DataError(f"{name} could not be downloaded into {root / sub} ({first[:120]}; no network?); "
                            f"copy its files there by hand, or run once where the network is reachable") from None
        raise DataError(f"{name} not found under {root / sub} ({first[:120]}); pass `download` to fetch it "
                        f"there, or `data_dir` to point at a folder that holds it") from None
    # MNIST's classes as the digits mnist5k and digits name them ("0", not torchvision's "0 - zero"), so that a
    # model of one scores the others
    classes = [plain_class_name(c) for c in train.classes]
    return ImageData(name, _split(train), _split(test), classes)
