"""Mixup and CutMix on a training batch, each image with its own mixing weight, and the loss of mixed labels.

Image i is mixed with its partner, image N-1-i of the batch (timm's pairing: the batch is in random
order already): mixup blends the two, `lam * x_i + (1 - lam) * x_partner`; CutMix pastes a box of the
partner into it, and `lam` becomes the share of image i's own pixels left. Every image draws its own
`lam` (from Beta(alpha, alpha)) and, with both on, its own choice of the two (CutMix with probability
1/2, timm's switch probability, per image as timm's "elem" mode). The labels are mixed in the loss:
`lam * CE(logits, y_i) + (1 - lam) * CE(logits, y_partner)` for every output (auxiliary heads and derived
targets alike), with label smoothing inside each CE, the same as a cross-entropy against mixed smoothed
one-hot targets. A mixed image counts as correct when the prediction is its dominant label (the one of
weight >= 1/2).

Beta draws need a numpy generator: it is seeded from the state of the run's augmentation generator, so the
batches are a function of that state, which the checkpoint keeps. The state is read on the host, never
drawn on the device: on a GPU nothing in the mixing waits for it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SWITCH_PROB = 0.5  # with mixup and CutMix both on: the chance that an image is cut-mixed


@dataclass(frozen=True)
class MixConfig:
    """A run's batch mixing: the Beta alpha of mixup and of CutMix, 0 turning each off."""

    mixup: float = 0.0   # Beta(alpha, alpha) of mixup; 0: off
    cutmix: float = 0.0  # Beta(alpha, alpha) of CutMix; 0: off

    @property
    def enabled(self) -> bool:
        """True when mixup or CutMix is on (its alpha above 0)."""
        return self.mixup > 0 or self.cutmix > 0


@dataclass
class Mix:
    """How a batch was mixed: each image's own weight `lam` and its partner's index."""

    lam: torch.Tensor      # N, float: the weight of the image's own label
    partner: torch.Tensor  # N, long

    def loss(self, logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        """Cross-entropy (label smoothing `smoothing`) on each image's own label weighted `lam`, on its partner's
        1 - lam; the mean over the batch."""
        own = F.cross_entropy(logits, target, label_smoothing=smoothing, reduction="none")
        other = F.cross_entropy(logits, target[self.partner], label_smoothing=smoothing, reduction="none")
        return (self.lam * own + (1 - self.lam) * other).mean()

    def dominant(self, target: torch.Tensor) -> torch.Tensor:
        """Each image's label of the larger weight (its own at exactly 1/2)."""
        return torch.where(self.lam >= 0.5, target, target[self.partner])

    def soft_targets(self, target: torch.Tensor, classes: int) -> torch.Tensor:
        """The mixed one-hot targets (each row sums to 1)."""
        own = F.one_hot(target, classes).float()
        return self.lam[:, None] * own + (1 - self.lam[:, None]) * own[self.partner]


def beta(alpha: float, n: int, generator: torch.Generator, salt: int = 0,
         device: torch.device | str = "cpu") -> torch.Tensor:
    """n draws of Beta(alpha, alpha) on `device`, from a numpy generator seeded by the state of `generator`
    (and `salt`, for a second draw from the same state). A CUDA generator's state (its seed and offset) lives
    on the host, so reading it does not wait for the device."""
    digest = hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=8).digest()
    draws = torch.from_numpy(np.random.default_rng([int.from_bytes(digest, "little"), salt]).beta(alpha, alpha, n))
    draws = draws.float()
    if torch.device(device).type == "cpu":
        return draws
    return draws.pin_memory().to(device, non_blocking=True)  # (from pinned memory: a copy the host need not wait on)


def mix_batch(x: torch.Tensor, config: MixConfig, generator: torch.Generator) -> tuple[torch.Tensor, Mix]:
    """The batch mixed per image, and how (see the module's text)."""
    n, _, h, w = x.shape
    gdev = generator.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).to(x.device)

    partner = torch.arange(n - 1, -1, -1, device=x.device)
    if config.mixup > 0 and config.cutmix > 0:
        cut = rand(n) < SWITCH_PROB
        lam = torch.where(cut, beta(config.cutmix, n, generator, 0, x.device),
                          beta(config.mixup, n, generator, 1, x.device))
    else:
        cut = torch.full((n,), config.cutmix > 0, device=x.device)
        lam = beta(config.cutmix or config.mixup, n, generator, 0, x.device)
    # CutMix's box (timm's rand_bbox): sides sqrt(1 - lam) of the image's, centred at random, clipped.
    ratio = torch.sqrt(1 - lam)
    cut_h, cut_w = (h * ratio).floor(), (w * ratio).floor()
    cy, cx = (rand(n) * h).floor(), (rand(n) * w).floor()
    y0, y1 = (cy - (cut_h / 2).floor()).clamp(0, h), (cy + ((cut_h + 1) / 2).floor()).clamp(0, h)
    x0, x1 = (cx - (cut_w / 2).floor()).clamp(0, w), (cx + ((cut_w + 1) / 2).floor()).clamp(0, w)
    ys, xs = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
    box = ((ys >= y0[:, None]) & (ys < y1[:, None]))[:, :, None] & ((xs >= x0[:, None]) & (xs < x1[:, None]))[:, None]
    box = box & cut[:, None, None]
    lam = torch.where(cut, 1 - (y1 - y0) * (x1 - x0) / (h * w), lam)  # the share of its own pixels
    other = x[partner]
    weight = lam.view(-1, 1, 1, 1).to(x.dtype)
    blended = weight * x + (1 - weight) * other
    mixed = torch.where(box[:, None], other, torch.where(cut.view(-1, 1, 1, 1), x, blended))
    return mixed.contiguous(memory_format=_memory_format(x)), Mix(lam, partner)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


__all__ = ["Mix", "MixConfig", "SWITCH_PROB", "beta", "mix_batch"]
