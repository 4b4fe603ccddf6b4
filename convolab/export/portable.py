"""Layers rewritten for export into operations that every runtime computes alike.

An `nn.AvgPool2d(ceil_mode=True)` whose last window overhangs the input (nin_cifar's 3x3 stride-2 pool of a
16 x 16 map) is averaged by PyTorch over the elements the window covers; ONNX Runtime before 1.24 (the last
release for Python 3.10 is 1.23) divides it by the whole kernel, and nin_cifar's ONNX export differed from the
model by 0.4% of its largest logit there. The rewrite pools in floor mode only, over the input padded to the
size ceil mode reads, and divides each window's sum by the count PyTorch divides by: the same numbers in
PyTorch, and one meaning in the exported graph.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[-1]))


class FloorModeAvgPool(nn.Module):
    """`pool` (an AvgPool2d in ceil mode) computed with floor-mode pooling only, as PyTorch computes it."""

    def __init__(self, pool: nn.AvgPool2d):
        super().__init__()
        self.kernel, self.stride = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
        self.padding = _pair(pool.padding)
        self.count_include_pad, self.divisor_override = pool.count_include_pad, pool.divisor_override

    def _extra(self, size: int, k: int, s: int, p: int) -> int:
        """The padding after the end that floor mode needs to give ceil mode's number of windows (PyTorch's
        rule: a last window that would start past the input's end and its padding is dropped)."""
        out = -(-(size + 2 * p - k) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return max(0, (out - 1) * s + k - (size + 2 * p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        height, width = int(x.shape[-2]), int(x.shape[-1])
        eh, ew = self._extra(height, kh, sh, ph), self._extra(width, kw, sw, pw)
        if eh == ew == 0:  # (no window overhangs: floor mode is ceil mode here)
            return F.avg_pool2d(x, self.kernel, self.stride, self.padding, False, self.count_include_pad,
                                self.divisor_override)
        padded = F.pad(x, (pw, pw + ew, ph, ph + eh))
        sums = F.avg_pool2d(padded, self.kernel, self.stride) * (kh * kw)
        if self.divisor_override:
            return sums / self.divisor_override
        # What PyTorch divides by: the window's elements within the padded input (count_include_pad), else
        # within the input itself.
        inside = x.new_ones((1, 1, height + 2 * ph, width + 2 * pw)) if self.count_include_pad \
            else F.pad(x.new_ones((1, 1, height, width)), (pw, pw, ph, ph))
        counts = F.avg_pool2d(F.pad(inside, (0, ew, 0, eh)), self.kernel, self.stride) * (kh * kw)
        return sums / counts


def portable(model: nn.Module) -> nn.Module:
    """`model` with its ceil-mode average pools as `FloorModeAvgPool` (a copy where there are any)."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.AvgPool2d) and m.ceil_mode]
    if not names:
        return model
    model = copy.deepcopy(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FloorModeAvgPool(getattr(parent, child)))
    return model
