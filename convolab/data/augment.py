"""Whole-batch preprocessing and augmentation on the training device.

uint8 N x C x H x W in, normalized float out: channel conversion, resize to the model's input,
random crop with padding, horizontal flip, an AutoAugment-family policy (`autoaugment.py`) and random
erasing, each done for the whole batch at once with tensor ops (no per-sample Python work), each image
with its own random parameters, drawn from the run's augmentation generator in this order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import DataError
from .autoaugment import auto_augment


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 0  # random crop of the original size from the image padded by this many pixels
    flip: bool = False     # random horizontal flip (off for digits: a mirrored 2 is not a 2)
    erasing: float = 0.0   # probability of erasing one random rectangle per image
    auto_augment: str = "none"  # rand, trivial, autoaugment-cifar10 or autoaugment-imagenet (autoaugment.POLICIES)

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.erasing > 0 or self.auto_augment != "none"


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by the luma weights; nothing else (one grey image is not the
    several images stacked that a model of 2 or 4 channels takes)."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, channels, -1, -1)
    if channels == 1 and x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    several = ("; a model of several image inputs takes an item's images stacked: score it on its labels CSV "
               "(convolab evaluate RUN --data labels.csv)" if channels not in (1, 3) else "")
    raise DataError(f"cannot make {x.shape[1]}-channel images into the model's {channels}-channel input{several}")


def channel_statistics(images: torch.Tensor, channels: int | None = None
                       ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std, in [0, 1] units, of uint8 N x C x H x W images as a model of `channels`
    input channels sees them (grey made colour, colour made grey by `convert_channels`; None: as they are).

    Exact and without a float copy of the images (a CIFAR-10 cache is 150 MiB as uint8, 1.2 GiB as float32
    copied twice): each channel's histogram of its 256 values, in float64; colour made grey (a weighted sum of
    the channels, whose spread depends on how they vary together) sums chunks of the grey images instead."""
    if channels == 1 and images.shape[1] == 3:
        total = square = torch.zeros((), dtype=torch.float64)
        for chunk in images.split(STATS_CHUNK):
            grey = convert_channels(chunk.float().div_(255), 1)
            total = total + grey.sum(dtype=torch.float64)
            square = square + grey.square().sum(dtype=torch.float64)
        count = images.numel() // 3
        mean = total / count
        std = ((square - count * mean * mean) / max(count - 1, 1)).clamp_(min=0).sqrt()
        return (float(mean),), (float(std),)
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64).cpu()
        n = counts.sum()
        mean = (counts * values).sum() / n
        means.append(float(mean))
        stds.append(float(((counts * (values - mean) ** 2).sum() / max(float(n) - 1, 1)).sqrt()))
    if channels == 3 and images.shape[1] == 1:  # (grey made colour: the one channel's, three times)
        return tuple(means * 3), tuple(stds * 3)
    return tuple(means), tuple(stds)


STATS_CHUNK = 4096  # images a chunk, colour made grey: 50 MiB of float32 at 32 x 32


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by its own random offset within a zero border of `padding` pixels."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=generator.device).to(x.device)
    # Every h x w window of every padded image, as a view (n x c x 2p+1 x 2p+1 x h x w); one index picks each
    # image's own: a copy of the n crops and nothing else (5x faster than indexing rows and columns).
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    return windows[torch.arange(n, device=x.device), :, dy, dx]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2.

    A select, not an index of the chosen images: `nonzero` would wait for the device on every batch.
    """
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


ERASING_TRIES = 10  # torchvision's RandomErasing: a rectangle that does not fit is drawn again, 10 times at most


def random_erasing(x: torch.Tensor, p: float, generator: torch.Generator,
                   scale: tuple[float, float] = (0.02, 0.33), ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Zero one random rectangle in a fraction `p` of images, as torchvision's RandomErasing(p, scale, ratio,
    value=0) draws it for each image: an area a `scale` fraction of the image's and a log-uniform aspect `ratio`,
    sides rounded to the nearest pixel, drawn again (10 times at most, then none) until it fits inside."""
    n, _, h, w = x.shape
    gdev = generator.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(x.device)

    area = (scale[0] + (scale[1] - scale[0]) * rand(n, ERASING_TRIES)) * h * w
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * rand(n, ERASING_TRIES))
    tries_h, tries_w = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
    fits = (tries_h < h) & (tries_w < w)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # (the first that fits; 0 where none does)
    eh, ew = tries_h.gather(1, first)[:, 0], tries_w.gather(1, first)[:, 0]
    y0 = ((h - eh + 1) * rand(n)).floor()
    x0 = ((w - ew + 1) * rand(n)).floor()
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])
    in_x = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])
    erased = fits.any(1) & (rand(n) < p)
    mask = (in_y[:, :, None] & in_x[:, None, :]) & erased[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


class BatchTransform:
    """uint8 batch -> float batch the model expects, with optional augmentation."""

    def __init__(self, channels: int, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...],
                 augment: AugmentConfig = AugmentConfig(), channels_last: bool = False):
        self.channels, self.size = channels, tuple(size)
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.augment = augment
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor, train: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        policy = self.augment.auto_augment if train else "none"
        augment = train and (self.augment.crop_padding > 0 or self.augment.flip or policy != "none")
        if train and self.augment.enabled and generator is None:  # (random erasing draws from it too)
            raise ValueError("training augmentation needs a generator: pass generator=torch.Generator()")
        # Crops and flips only move pixels: on uint8 at the model's size they give the same result as
        # on floats, for a quarter of the memory traffic. The policy works on uint8 values (0-255).
        early = augment and tuple(images.shape[-2:]) == self.size and images.shape[1] == self.channels
        x = self._crop_flip(images, generator) if early else images
        x = x.float()  # a new tensor: the in-place steps below never touch `images`
        if early and policy != "none":
            x = auto_augment(x, policy, generator)
        x = x.div_(255)
        x = convert_channels(x, self.channels)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if augment and not early:
            x = self._crop_flip(x, generator)
            if policy != "none":
                x = auto_augment(x.mul(255).round_(), policy, generator).div_(255)
        if self.mean.device != x.device:
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        x = (x.sub_(self.mean) if x.stride(1) else x - self.mean).div_(self.std)  # (grey expanded to RGB: a view)
        if train and self.augment.erasing > 0:
            x = random_erasing(x, self.augment.erasing, generator)
        return x.contiguous(memory_format=self.memory_format)

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.augment.crop_padding:
            x = random_crop(x, self.augment.crop_padding, generator)
        if self.augment.flip:
            x = random_flip(x, generator)
        return x
