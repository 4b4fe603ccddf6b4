"""Batch-norm folding: an eval-mode BatchNorm2d (or a frozen backbone's FrozenBatchNorm2d) that only ever
sees one convolution's output is an affine map per channel, so it can be merged into that convolution's
weight and bias.

Pairs are found by tracing the model with torch.fx (the data flow, not the order modules were
registered in): a pre-activation net's BN, which reads a sum or a concatenation, is never taken.
"""
from __future__ import annotations

import copy

import torch
import torch.fx as fx
from torch import nn

from ..layers.frozen_norm import FrozenBatchNorm2d


class _AllOutputs(nn.Module):
    """Traces `forward_outputs`, so auxiliary heads' convolutions are seen as well."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.forward_outputs(x)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, a FrozenBatchNorm2d kept as one call (as torch.nn's layers are), not traced through."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, FrozenBatchNorm2d) or super().is_leaf_module(m, module_qualified_name)


def _graph(model: nn.Module) -> tuple[fx.Graph, str]:
    """The traced graph and the prefix its module paths carry."""
    if getattr(model, "aux_names", ()) and hasattr(model, "forward_outputs"):
        return _Tracer().trace(_AllOutputs(model)), "model."
    return _Tracer().trace(model), ""


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where the BN's only input is the conv's output, the conv's output
    goes nowhere else, and each of the two modules is called exactly once; none for a model that
    torch.fx cannot trace."""
    try:
        graph, prefix = _graph(model)
    except Exception:  # noqa: BLE001 - not symbolically traceable (data-dependent Python): fold nothing
        return []
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        bn_name = node.target.removeprefix(prefix)
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module":
            continue
        conv_name = src.target.removeprefix(prefix)
        bn, conv = modules.get(bn_name), modules.get(conv_name)
        if (_foldable(bn) and type(conv) is nn.Conv2d
                and conv.out_channels == bn.num_features
                and len(src.users) == 1 and calls[node.target] == 1 and calls[src.target] == 1):
            pairs.append((conv_name, bn_name))
    return pairs


def _foldable(bn: nn.Module | None) -> bool:
    """A BatchNorm2d with running statistics, or a FrozenBatchNorm2d (which has them always)."""
    if type(bn) is FrozenBatchNorm2d:
        return True
    return type(bn) is nn.BatchNorm2d and bn.track_running_stats and bn.running_var is not None


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d | FrozenBatchNorm2d) -> None:
    # In float64, so the folded model matches the unfolded one to float32 round-off.
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    bias = (bias - bn.running_mean.double()) * scale
    if bn.bias is not None:
        bias = bias + bn.bias.double()
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype))
    conv.bias = nn.Parameter(bias.to(dtype))


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every BatchNorm2d (frozen or not) that directly follows a Conv2d merged
    into it and replaced by Identity; the model itself is left unchanged."""
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    for conv_name, bn_name in conv_bn_pairs(folded):
        _fold_into(modules[conv_name], modules[bn_name])
        _set_module(folded, bn_name, nn.Identity())
    return folded


def count_batchnorm(model: nn.Module) -> int:
    """Batch-norm layers, FrozenBatchNorm2d (not a `_BatchNorm`) included."""
    return sum(isinstance(m, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)) for m in model.modules())
