"""Single image files, as `predict` reads them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """An image file as uint8 C x H x W, grey for 1 channel, RGB otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({str(err).splitlines()[0]})") from None
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
