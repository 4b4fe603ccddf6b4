"""Batch norm with fixed statistics: the frozen backbone's BN layers when only the heads train.

As torchvision's and timm's `FrozenBatchNorm2d`, it is a plain `nn.Module`, not an `nn.BatchNorm2d`: the
running statistics and the affine are buffers, not parameters, so an optimizer never sees them, the layer
always normalizes with the stored statistics (in `model.train()` as in `model.eval()`), and PyTorch's
batch-norm tools, which look for `_BatchNorm` layers, leave it alone (`torch.optim.swa_utils.update_bn`
does not recompute its statistics, `nn.SyncBatchNorm.convert_sync_batchnorm` and `--sync-bn` do not
convert it back into a trainable layer). Unlike theirs, it normalizes with the same `F.batch_norm` call as
an `nn.BatchNorm2d` in eval mode (so a frozen layer computes bit for bit what the layer it replaced
computed in eval mode), and its state dict has exactly BatchNorm2d's keys (weight, bias, running_mean,
running_var, num_batches_tracked, in that order; the count is kept, never advanced): the checkpoint of a
frozen run loads into the plain model, and the plain model's into a frozen one. A state dict without
num_batches_tracked (torchvision's or timm's frozen layer) loads too.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenBatchNorm2d(nn.Module):
    """`y = (x - running_mean) / sqrt(running_var + eps) * weight + bias` per channel, nothing learnt."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        # BatchNorm2d's five tensors, all buffers, in its order.
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
        frozen = cls(bn.num_features, bn.eps).to(bn.running_mean.device)
        with torch.no_grad():
            for name, value in bn.state_dict().items():
                getattr(frozen, name).copy_(value)
        return frozen

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # torchvision's and timm's FrozenBatchNorm2d save no batch count: keep ours.
        state_dict.setdefault(prefix + "num_batches_tracked", self.num_batches_tracked)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        """Always eval mode: a parent's `train()` does not make a frozen layer look trainable."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x num_features x H x W, normalized with the stored statistics and affine, in train mode as in eval."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        """What `print(model)` shows of the layer: its channels and eps."""
        return f"{self.num_features}, eps={self.eps}"


__all__ = ["FrozenBatchNorm2d"]
