"""Single image files, as `predict` reads them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError


def to_mode(img, mode: str):
    """A PIL image in mode L or RGB; palette and alpha images pass through RGBA on the way to RGB,
    so a transparent palette converts cleanly."""
    if img.mode == mode:
        return img
    if mode == "RGB" and ("A" in img.mode or img.mode == "P"):
        img = img.convert("RGBA")
    return img.convert(mode)


def read_image(path: str | Path, channels: int, center_crop_size: int | None = None) -> torch.Tensor:
    """An image file as uint8 C x H x W, grey for 1 channel, RGB otherwise; with `center_crop_size`,
    its centre crop at that size, as streamed images are evaluated."""
    from PIL import Image, UnidentifiedImageError

    from .stream import decode_crop

    mode = "L" if channels == 1 else "RGB"
    try:
        if center_crop_size is not None:
            array = decode_crop(Path(path).read_bytes(), center_crop_size, mode)
        else:
            with Image.open(path) as img:
                array = np.asarray(to_mode(img, mode), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({str(err).splitlines()[0]})") from None
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
