"""Batch norm whose statistics span every process of a data-parallel run (`convolab train --sync-bn`).

With plain BN each of N processes normalizes its share of the global batch by that share's own
mean and variance, so N processes train another network than one process with the same batch.
Synchronized BN all-reduces the per-channel sums (forward) and the sums the backward pass needs,
so every process normalizes by the statistics of the whole global batch: N processes then train
the network of one, up to float round-off (`tests/test_sync_bn.py`).

PyTorch's `nn.SyncBatchNorm` runs on GPUs only ("expected input tensor to be on GPU"); this one
runs wherever the process group does (gloo on the CPU). On CUDA, convolab uses PyTorch's.
Sums are taken in float64, so E[x^2] - E[x]^2 loses nothing that matters at BN's scale.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xd = x.double()
        local = torch.cat([xd.sum(dims), (xd * xd).sum(dims),
                           torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64, device=x.device)])
        dist.all_reduce(local, group=group)
        channels = x.shape[1]
        count = local[-1].item()
        mean = local[:channels] / count
        var = (local[channels:2 * channels] / count - mean * mean).clamp_(min=0)
        if running_mean is not None and count > 0:  # (every share empty: the statistics stay, as BN's do)
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            unbiased = var * (count / max(count - 1, 1))
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        invstd = torch.rsqrt(var + eps).to(x.dtype)
        xhat = (x - mean.to(x.dtype).view(shape)) * invstd.view(shape)
        y = xhat
        if weight is not None:
            y = y * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.count, ctx.group = count, group
        return y

    @staticmethod
    def backward(ctx, dy):
        xhat, invstd, weight = ctx.saved_tensors
        dims = [0, *range(2, dy.dim())]
        shape = [1, -1] + [1] * (dy.dim() - 2)
        dxhat = dy * weight.view(shape) if weight is not None else dy
        sums = torch.cat([dxhat.double().sum(dims), (dxhat.double() * xhat.double()).sum(dims)])
        dist.all_reduce(sums, group=ctx.group)  # over the whole global batch
        channels = dy.shape[1]
        mean_dxhat = (sums[:channels] / ctx.count).to(dy.dtype).view(shape)
        mean_dxhat_xhat = (sums[channels:] / ctx.count).to(dy.dtype).view(shape)
        dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * invstd.view(shape)
        # This process's share of the parameter gradients; DistributedDataParallel averages them.
        dweight = (dy * xhat).sum(dims) if weight is not None else None
        dbias = dy.sum(dims) if weight is not None else None
        return dx, dweight, dbias, None, None, None, None, None


class SyncBatchNorm(_BatchNorm):
    """BatchNorm1d/2d/3d with statistics over all processes of the default group in training mode;
    in eval mode, or outside a process group of more than one, exactly `nn.BatchNorm`. Its
    parameters and buffers have BN's names, so checkpoints load into the plain model."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x ... -> the same shape, normalized in training by the whole global batch's statistics (a float16
        or bfloat16 input comes out float32); otherwise nn.BatchNorm's forward."""
        self._check_input_dim(x)
        synced = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(x)
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # statistics in float32 at least, as autocast runs batch_norm
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative moving average, as nn.BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
        running_mean = self.running_mean if self.track_running_stats else None
        running_var = self.running_var if self.track_running_stats else None
        return _SyncBatchNormFunction.apply(x, self.weight, self.bias, running_mean, running_var, self.eps,
                                            momentum if momentum is not None else 0.0, dist.group.WORLD)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` with every BatchNorm layer synchronized across processes (PyTorch's on CUDA, ours
    elsewhere); the layers keep their parameter and buffer tensors, so optimizers and EMAs stay valid."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, (SyncBatchNorm, nn.SyncBatchNorm)):
        synced = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        if module.track_running_stats:
            synced.running_mean, synced.running_var = module.running_mean, module.running_var
            synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        converted = _convert(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]
