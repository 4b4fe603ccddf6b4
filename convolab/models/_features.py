"""Parts of a model traced with torch.fx: the feature maps of chosen stages (`features_only`) and
the layers up to a named stage under a fresh head (`truncate`, fine-tuning's `--until`).

Both keep the parameter names of the source model (`conv1.conv.weight`, not `body.conv1...`):
the traced code runs on modules registered directly on the new model, so a checkpoint of the
source loads into the part by name, and the part's checkpoint is rebuilt with `create_model`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import ClassifierHead
from ._base import ConvNet, FeatureInfo


def _adopt(target: nn.Module, source: nn.Module, nodes: dict[str, str]) -> tuple[Callable, Callable]:
    """Trace `source` up to `nodes` ({module name: output name}), register the modules the trace
    uses on `target` under their own names, and return the traced forward (train, eval)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    try:
        graph = create_feature_extractor(source, return_nodes=nodes)
    except Exception as err:  # torch.fx cannot follow data-dependent Python control flow
        name = getattr(source, "model_name", "") or type(source).__name__
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{name} cannot be cut into stages by torch.fx tracing: {first}") from None
    for name, child in graph.named_children():
        target.add_module(name, child)
    for name, param in graph.named_parameters(recurse=False):
        target.register_parameter(name, param)
    for name, buffer in graph.named_buffers(recurse=False):
        target.register_buffer(name, buffer)
    # The generated code reads `self.<name>` only, so it runs on `target` as well as on `graph`.
    graph.train()
    forward_train = type(graph).forward
    graph.eval()
    forward_eval = type(graph).forward
    return forward_train, forward_eval


def _stage_index(model: ConvNet, name: str) -> int | None:
    names = [f.module for f in model.feature_info]
    return names.index(name) if name in names else None


def layer_names(model: nn.Module) -> list[str]:
    """The names `truncate` takes: the model's top-level layers in order, then its feature stages."""
    skip = {"head", *getattr(model, "aux_names", ())}
    names = [name for name, _ in model.named_children() if name not in skip]
    names += [f.module for f in getattr(model, "feature_info", []) if f.module not in names]
    return names


class FeatureListNet(nn.Module):
    """The feature maps of the chosen stages of a model, as a list; `feature_info` lists them."""

    def __init__(self, model: ConvNet, out_indices: tuple[int, ...] | None = None):
        super().__init__()
        info = getattr(model, "feature_info", None)
        if not info:
            raise ConfigError(f"{type(model).__name__} lists no feature stages (feature_info); "
                              "features_only needs them")
        indices = tuple(range(len(info))) if out_indices is None else tuple(out_indices)
        if not indices or any(not -len(info) <= i < len(info) for i in indices):
            name = getattr(model, "model_name", "") or type(model).__name__
            raise ConfigError(f"out_indices {indices} out of range: {name} has {len(info)} feature stages "
                              f"({', '.join(f.module for f in info)})")
        chosen = [info[i] for i in indices]
        self.out_indices = tuple(i % len(info) for i in indices)
        self.feature_info = [FeatureInfo(f.module, f.num_chs, f.reduction) for f in chosen]
        self.in_chans = model.in_chans
        self.data_config = model.data_config
        self.model_name = getattr(model, "model_name", "")
        self._forward_train, self._forward_eval = _adopt(self, model, {f.module: f.module for f in chosen})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        run = self._forward_train if self.training else self._forward_eval
        return list(run(self, x).values())


class TruncatedNet(ConvNet):
    """The layers of a model up to `layer` (inclusive), then global pool and a fresh linear head."""

    def __init__(self, model: ConvNet, layer: str, num_classes: int | None = None, drop_rate: float = 0.0):
        super().__init__()
        valid = layer_names(model)
        if layer not in valid:
            name = getattr(model, "model_name", "") or type(model).__name__
            raise ConfigError(f"unknown layer {layer!r} for {name}; choose one of: {', '.join(valid)}")
        self.until = layer
        self.num_classes = model.num_classes if num_classes is None else num_classes
        self.in_chans, self.data_config = model.in_chans, model.data_config
        self.model_name = getattr(model, "model_name", "")
        self._forward_train, self._forward_eval = _adopt(self, model, {layer: "features"})
        index = _stage_index(model, layer)
        if index is not None:
            kept = model.feature_info[:index + 1]
            self.feature_info = [FeatureInfo(f.module, f.num_chs, f.reduction) for f in kept]
        else:  # a layer between the listed stages: measure its output once
            kept = [f for f in model.feature_info if self._has(f.module)]
            size = self.data_config.input_size
            was_training = self.training
            with torch.no_grad():
                out = self.eval().forward_features(torch.zeros(1, *size))
            self.train(was_training)
            kept.append(FeatureInfo(layer, out.shape[1], max(1, size[-1] // out.shape[-1])))
            self.feature_info = kept
        self.num_features = self.feature_info[-1].num_chs
        self.head = ClassifierHead(self.num_features, self.num_classes, drop_rate)

    def _has(self, name: str) -> bool:
        try:
            self.get_submodule(name)
        except AttributeError:
            return False
        return True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        run = self._forward_train if self.training else self._forward_eval
        return run(self, x)["features"]


def features_only(model: ConvNet, out_indices: tuple[int, ...] | None = None) -> FeatureListNet:
    """`model`'s feature maps at `out_indices` (indices into its feature_info; default all)."""
    return FeatureListNet(model, out_indices)


def truncate(model: ConvNet, layer: str, num_classes: int | None = None) -> TruncatedNet:
    """A new network: `model`'s layers up to `layer` (weights shared), global pool, fresh linear head."""
    return TruncatedNet(model, layer, num_classes)


__all__ = ["FeatureListNet", "TruncatedNet", "features_only", "layer_names", "truncate"]
