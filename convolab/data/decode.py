"""Decoding images: the mode each is converted to, the crops of training and evaluation, and one
encoded image to a uint8 array, at most the size the model needs. Where the bytes come from is
`archive.py`'s business, how they become batches `stream.py`'s and `folder.py`'s.

JPEGs are decoded at a reduced DCT scale when the crop allows it (PIL's `draft`), so a 4000 px photo
costs little more than a 500 px one.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import random
import re
import signal
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

CROP_PCT = 0.875  # evaluation: resize to size / 0.875, then take the centre size x size (torchvision, timm)
MIN_CROP_SCALE = 0.08  # training: random-resized crops of 8% to 100% of the image area (Inception, torchvision)
CROP_RATIO = (3 / 4, 4 / 3)


GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # decoded as grey (L)


def grey_or_colour(img) -> str:
    """The mode an image is decoded to: L for a grey one, RGB otherwise. A palette image (P, PA: a GIF, an
    8-bit PNG) is grey when every palette entry it uses is (R == G == B); that needs its pixels, so it is
    loaded (palette images are small)."""
    if img.mode in GREY_MODES:
        return "L"
    if img.mode not in ("P", "PA"):
        return "RGB"
    palette = img.getpalette()
    if palette is None:  # no palette: PIL reads the indices as grey levels
        return "L"
    indices = np.asarray(img)
    used = np.unique(indices[..., 0] if indices.ndim == 3 else indices)
    colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    used = colours[used[used < len(colours)]]
    return "L" if (used[:, 0] == used[:, 1]).all() and (used[:, 1] == used[:, 2]).all() else "RGB"


def to_8bit(img):
    """A grey image of more than 8 bits (a 16-bit PNG opens as I;16, or I under Pillow 9; a float TIFF as F) in
    mode L, its range scaled rather than clipped: integer values (I;16 and I alike) divided by 257 (65535 becomes
    255), whatever the image's own maximum, so that two exposures of one scene keep their order (a rule by each
    image's maximum read a dark one 175 times brighter than a light one); floats of at most 1 times 255; what is
    left outside [0, 255] clipped."""
    from PIL import Image

    a = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        a = a * 255 if a.size and np.nanmax(a) <= 1 else a
    else:  # (I;16, I;16B, I)
        a = a / 257
    return Image.fromarray(np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8), "L")


def to_mode(img, mode: str):
    """A PIL image in mode L or RGB; palette images pass through RGBA (alpha images too, on the way to
    RGB), so a transparent palette converts cleanly, and grey images of more than 8 bits are scaled to 8."""
    if img.mode == mode:
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = to_8bit(img)
        if mode == "L":
            return img
    if img.mode in ("P", "PA") or (mode == "RGB" and "A" in img.mode):
        img = img.convert("RGBA")
    return img.convert(mode)


class ImageTooLarge(ValueError):
    """PIL refused an image as a possible decompression bomb: its text says how large and the limit."""


_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def too_large(err: BaseException) -> ImageTooLarge:
    """PIL's DecompressionBombError as a few words: `400 M pixels, over PIL's limit of 179 M: resize it`."""
    match = _BOMB.search(str(err))
    size = (f"{int(match[1]) / 1e6:,.0f} M pixels, over PIL's limit of {int(match[2]) / 1e6:,.0f} M"
            if match else "more pixels than PIL's limit")
    return ImageTooLarge(f"{size} that guards against decompression bombs: resize it")


def open_image(source):
    """PIL's `Image.open`, without its DecompressionBombWarning: an image of 89-179 M pixels is a large
    photograph and is decoded; over 179 M PIL raises DecompressionBombError, which the callers refuse
    in one line (`too_large`)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


def ignore_interrupts(*_worker_id: int) -> None:
    """In a worker process that decodes images (a DataLoader's, the cache's pool): Ctrl-C reaches the whole
    process group, and the workers leave it to the main process, which stops at the next safe point (a worker
    that quit on it would fail the batch being read, or leave the pool's queues locked)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ignore_stop_signals(*_worker_id: int) -> None:
    """`ignore_interrupts` and SIGTERM too, in a DataLoader's worker: SLURM and `kill -- -PGID` send it to the whole
    process group, and a worker it ended failed the batch the main process waited for (torch's "DataLoader worker
    is killed by signal: Terminated" traceback) before that process could save its stop. The DataLoader ends its
    workers itself, and a worker whose main process is gone exits (torch's watchdog). Not in the cache's pool,
    whose terminate() ends its workers by SIGTERM and then waits for them."""
    ignore_interrupts()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def decode_image(data: bytes, resize: int | None = None) -> tuple[np.ndarray | None, str]:
    """HWC uint8 array and PIL mode (resized to `resize` x `resize` if given), or (None, reason)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_image(io.BytesIO(data)) as img:
            img.load()
            mode = grey_or_colour(img)
            img = to_mode(img, mode)
            if resize is not None and img.size != (resize, resize):
                img = img.resize((resize, resize), Image.Resampling.BILINEAR)
            return np.asarray(img), mode
    except Image.DecompressionBombError as err:
        return None, str(too_large(err))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return None, failure(err)


def failure(err: BaseException) -> str:
    """Why PIL could not decode an image, in a few words: never the repr of the buffer it read from."""
    if type(err).__name__ == "UnidentifiedImageError":
        return "not an image format PIL recognises"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", text)[:160]


# ----- decoding to the input size ---------------------------------------------------------------
def random_resized_box(width: int, height: int, rng: random.Random, min_scale: float = MIN_CROP_SCALE,
                       ratio: tuple[float, float] = CROP_RATIO) -> tuple[float, float, float, float]:
    """torchvision's RandomResizedCrop box (left, top, right, bottom): a random area fraction in
    [min_scale, 1] and aspect ratio in `ratio`, else the centre crop of the nearest ratio."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(min_scale, 1.0)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            return left, top, left + w, top + h
    return ratio_center_box(width, height, ratio)


def ratio_center_box(width: int, height: int, ratio: tuple[float, float] = CROP_RATIO
                     ) -> tuple[float, float, float, float]:
    """The whole image, or its centre cut to the nearest aspect ratio in `ratio` (RandomResizedCrop's
    fallback when ten draws miss)."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def resize_side(size: int, crop_pct: float) -> int:
    """The short side an image is resized to before its centre crop of `size`: size / crop_pct rounded down, as
    timm's and torchvision's presets take it, but not below by float round-off (176 / (176 / 233) is
    232.99999999999997: 233, the resize the crop_pct was made from, not 232)."""
    return math.floor(size / crop_pct + 1e-6)


def center_box(width: int, height: int, size: int, crop_pct: float = CROP_PCT) -> tuple[float, float, float, float]:
    """The region of the original that torchvision's Resize(resize_side(size, crop_pct)) then CenterCrop(size)
    keeps (the same integer sizes and offsets), to be resampled once instead of twice."""
    short = resize_side(size, crop_pct)
    if width <= height:
        rw, rh = short, int(short * height / width)
    else:
        rw, rh = int(short * width / height), short
    left, top = int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))
    sx, sy = width / rw, height / rh
    return max(0.0, left * sx), max(0.0, top * sy), min(width, (left + size) * sx), min(height, (top + size) * sy)


def decode_crop(data: bytes, size: int, mode: str, rng: random.Random | None = None,
                min_scale: float = MIN_CROP_SCALE, crop_pct: float = CROP_PCT, flip: bool = False,
                interpolation: str = "bilinear") -> np.ndarray:
    """An encoded image as a uint8 size x size (x 3) array: a random-resized crop if `rng` is given
    (mirrored with probability 1/2 if `flip`), else the evaluation centre crop. JPEGs are decoded at
    the smallest DCT scale that still gives the crop `size` pixels. Raises OSError/ValueError for
    files that are not readable images, ImageTooLarge (a ValueError) for those over PIL's pixel limit."""
    from PIL import Image

    try:
        opened = open_image(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise too_large(err) from None
    with opened as img:
        width, height = img.size
        box = random_resized_box(width, height, rng, min_scale) if rng is not None else \
            center_box(width, height, size, crop_pct)
        bw, bh = box[2] - box[0], box[3] - box[1]
        if img.format == "JPEG":
            img.draft("L" if mode == "L" else "RGB", (math.ceil(width * size / bw), math.ceil(height * size / bh)))
        sx, sy = img.size[0] / width, img.size[1] / height
        img.load()
        img = to_mode(img, mode)
        # (timm's weights: bicubic; Image.Resampling: Pillow 9.1 deprecated the bare names, which warned)
        resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
        img = img.resize((size, size), resample, box=(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
        if flip and rng is not None and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return np.array(img)  # a writable copy: torch.from_numpy shares it


# ----- single files, as `predict` reads them ----------------------------------------------------
def read_image(path: str | Path, center_crop_size: int | None = None,
               crop_pct: float = CROP_PCT, interpolation: str = "bilinear",
               squash: tuple[int, int] | None = None, crop_mode: str = "RGB") -> torch.Tensor:
    """An image file as uint8 C x H x W. With `center_crop_size`: its centre crop at that size (of the image
    resized to `center_crop_size / crop_pct`), as streamed images are evaluated, in `crop_mode` ("L" or "RGB": the
    run's, as its streaming workers decode every file in the data's mode). Else the whole image as an image
    folder's cache decodes it: grey (1 channel) or colour (3) as the image is, the model's channels left to the
    batch transform as training left them (its float luma for a colour image into a grey model, not PIL's
    rounded one); with `squash` (height, width), resized to it as the cache resizes its images for --image-size
    (PIL's bilinear, to uint8), where its size differs."""
    from PIL import Image

    with reading(path):
        if center_crop_size is not None:
            array = decode_crop(Path(path).read_bytes(), center_crop_size, crop_mode, crop_pct=crop_pct,
                                interpolation=interpolation)
        else:
            with open_image(path) as img:
                img = to_mode(img, grey_or_colour(img))
                if squash is not None and img.size != (squash[1], squash[0]):
                    img = img.resize((squash[1], squash[0]), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def read_input(path: str | Path, preprocess: str, image_size: tuple[int, ...], in_chans: int,
               crop_pct: float = CROP_PCT, interpolation: str = "bilinear", crop_mode: str = "") -> torch.Tensor:
    """An image file as uint8 C x H x W, read as a run's files became its inputs (`preprocess`, as a checkpoint or
    an ONNX file records it): "center-crop" (streamed photos, published weights: the centre crop at
    `image_size`, decoded in `crop_mode`, the mode the run's stream decoded in, "L" or "RGB", which a checkpoint
    records; "" for one that does not: grey for a 1-channel model), "squash" (files resized to `image_size` as
    they were decoded) or "resize" (the whole file, resized on the batch). The one reading that `predict` on a
    checkpoint and on an exported ONNX model share."""
    if preprocess == "center-crop":
        return read_image(path, center_crop_size=int(image_size[0]), crop_pct=crop_pct, interpolation=interpolation,
                          crop_mode=crop_mode or ("L" if in_chans == 1 else "RGB"))
    return read_image(path, squash=(int(image_size[0]), int(image_size[1])) if preprocess == "squash" else None)


def check_image_file(path: str | Path) -> None:
    """That `path` opens as an image (its header: no pixels decoded), else the one line `read_image` would
    give: a command reading many files says so before any work (a truncated file is found when decoded)."""
    with reading(path), open_image(path):
        pass


SPECIAL_FILES = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                 (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def not_a_file(path: str | Path, mode: int | None = None) -> str | None:
    """What `path` is when it is there, links followed, and is neither a regular file nor a folder: `is a character
    device`, `is a FIFO (named pipe)`, `is a symbolic link to '/dev/zero', a character device` (`mode`: its stat's,
    when the caller has it). Reading one never ended (/dev/zero: until memory ran out, a MemoryError) or waited for
    ever (a FIFO without a writer); a stat reads nothing. None otherwise: reading a folder or a missing file says
    what is wrong."""
    if mode is None:
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for test, name in SPECIAL_FILES if test(mode)), "not a regular file")
    link = f"a symbolic link to {os.readlink(path)!r}, " if os.path.islink(path) else ""
    return f"is {link}{kind}"


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Around reading the image file `path`: why it cannot be read, as one DataError line (a device, a FIFO or a
    socket before anything is read from it)."""
    from PIL import Image, UnidentifiedImageError

    if why := not_a_file(path):
        raise DataError(f"image {path} {why}, not an image file; give a PNG, JPEG or other image file")
    try:
        yield
    except FileNotFoundError:
        if os.path.islink(path):
            raise DataError(f"image {path} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
                            "fix the link or give the image itself") from None
        raise DataError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"image {path} is a folder; give image files") from None
    except Image.DecompressionBombError as err:
        raise DataError(f"image {path} is too large to decode: {too_large(err)}") from None
    except ImageTooLarge as err:
        raise DataError(f"image {path} is too large to decode: {err}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"image {path} is not a readable image ({failure(err)}); "
                        "give a PNG, JPEG or other file PIL can open") from None


# ----- headers only ---------------------------------------------------------------------------
def sample_headers(read, names: list[str], count: int = 32) -> list[tuple[tuple[int, int], str]]:
    """(width, height) and mode of up to `count` images spread over `names` (headers only)."""
    from PIL import Image

    picks = sorted({names[round(i * (len(names) - 1) / max(1, count - 1))] for i in range(min(count, len(names)))})
    found = []
    for name in picks:
        try:
            with open_image(io.BytesIO(read(name))) as img:  # (a palette image as the mode it decodes to)
                found.append((img.size, grey_or_colour(img) if img.mode in ("P", "PA") else img.mode))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # an unreadable image is named when it is decoded
    return found


def opens_as_image(data: bytes) -> bool:
    """Whether `data` opens as an image PIL can decode (its header only; one over PIL's size limit does not)."""
    from PIL import Image

    try:
        with open_image(io.BytesIO(data)):
            return True
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def majority_mode(headers: list[tuple[tuple[int, int], str]]) -> str:
    """L if most sampled images are grey, else RGB (every image is converted to it as it is decoded)."""
    grey = sum(mode in GREY_MODES for _, mode in headers)
    return "L" if grey * 2 > len(headers) else "RGB"
