"""Gradient checkpointing of a network's blocks: each block's activations recomputed in the backward pass instead of
kept from the forward one, trading one more forward pass of compute for the memory of all but the blocks' inputs
(Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"; timm's `set_grad_checkpointing`, torchvision's
DenseNet `memory_efficient`).

A block class takes `Checkpointed` as its first base; `ConvNet.set_grad_checkpointing()` turns it on for every such
block of a model. Off (the default), a block is called as any module is. On, and only while it trains with grad
enabled, its call runs under torch's non-reentrant `checkpoint`, which replays the random streams (the same dropout
masks) and here also keeps batch norm exact: the recomputation would update each batch norm's running statistics a
second time (timm's and torchvision's checkpointing do), so they are put back as the first pass left them. A run
with checkpointing computes what one without does, to float round-off.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class Checkpointed:
    """A block that `set_grad_checkpointing` can make recompute its activations in the backward pass."""

    grad_checkpointing: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = super().__call__  # type: ignore[misc]
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):  # type: ignore[attr-defined]
            return call(*args, **kwargs)
        if torch.compiler.is_compiling():  # torch.compile recomputes in its own backward graph, which updates no
            # statistics twice; it takes no context_fn, and its gradients of a checkpointed Module.__call__ (hooks
            # and all) were 8% off resnet20's, where those of `forward` agree with eager's to 4e-5
            return checkpoint(self.forward, *args, use_reentrant=False, **kwargs)  # type: ignore[attr-defined]
        norms = [m for m in self.modules()  # type: ignore[attr-defined]
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
        return checkpoint(call, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _statistics_kept(norms)), **kwargs)


@contextlib.contextmanager
def _statistics_kept(norms: list[nn.modules.batchnorm._BatchNorm]) -> Iterator[None]:
    """The batch norms' running statistics and batch counts as they were before the recomputation inside."""
    kept = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, kept):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


def set_grad_checkpointing(model: nn.Module, enable: bool = True) -> int:
    """Checkpointing on (or off) for every `Checkpointed` block of `model`; the number of blocks."""
    if not isinstance(enable, bool):
        raise TypeError(f"set_grad_checkpointing's enable must be True or False, got {enable!r}")
    blocks = [m for m in model.modules() if isinstance(m, Checkpointed)]
    for block in blocks:
        block.grad_checkpointing = enable
    return len(blocks)


__all__ = ["Checkpointed", "set_grad_checkpointing"]
