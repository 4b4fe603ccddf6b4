"""Batch norm with fixed statistics: the frozen backbone's BN layers when only the heads train.

As torchvision's and timm's `FrozenBatchNorm2d`, the running statistics and the affine are buffers,
not parameters: an optimizer never sees them, and the layer always normalizes with the stored
statistics, in `model.train()` as in `model.eval()`. Unlike theirs, it normalizes with the same
`F.batch_norm` call as an `nn.BatchNorm2d` in eval mode (so a frozen layer computes bit for bit what the
layer it replaced computed in eval mode), it is an `nn.BatchNorm2d` for `isinstance` checks, and its
state dict has exactly BatchNorm2d's keys (weight, bias, running_mean, running_var,
num_batches_tracked, in that order): the checkpoint of a frozen run loads into the plain model, and
the plain model's into a frozen one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """`y = (x - running_mean) / sqrt(running_var + eps) * weight + bias` per channel, nothing learnt."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        # nn.BatchNorm2d.__init__ would register weight and bias as parameters: this layer holds the
        # same five tensors, all as buffers, registered in BatchNorm2d's order.
        nn.Module.__init__(self)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = True, True
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.training = False

    @classmethod
    def from_batchnorm(cls, bn: _BatchNorm) -> FrozenBatchNorm2d:
        """A frozen copy of `bn` (which must track running statistics): its affine (ones and zeros
        without one) and statistics, on its device."""
        frozen = cls(bn.num_features, bn.eps, bn.momentum).to(bn.running_mean.device)
        with torch.no_grad():
            for name, value in bn.state_dict().items():
                getattr(frozen, name).copy_(value)
        return frozen

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        """Always eval mode: a parent's `train()` does not make a frozen layer update its statistics."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H x W -> the same shape, normalized with the stored statistics (eval-mode `F.batch_norm`)."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


__all__ = ["FrozenBatchNorm2d"]
