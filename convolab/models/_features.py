"""Parts of a model traced with torch.fx: the feature maps of chosen stages (`features_only`) and
the layers up to a named stage under a fresh head (`truncate`, fine-tuning's `--until`).

Both keep the parameter names of the source model (`conv1.conv.weight`, not `body.conv1...`):
the traced code runs on modules registered directly on the new model, so a checkpoint of the
source loads into the part by name, and the part's checkpoint is rebuilt with `create_model`.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import torch
from torch import nn
from torch.fx import Graph, GraphModule

from ..errors import ConfigError
from ..layers import ClassifierHead
from ._base import ConvNet, FeatureInfo
from ._modes import modes_kept


def _adopt(target: nn.Module, source: nn.Module, nodes: dict[str, str]) -> tuple[Graph, Graph]:
    """Trace `source` up to `nodes` ({module name: output name}), register the modules the trace
    uses on `target` under their own names, and return the traced graphs (train, eval)."""
    from torchvision.models.feature_extraction import create_feature_extractor  # torchvision loads slowly

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
    # Copies own no module, so they pickle alone (a graph keeps its owner, with every weight).
    return copy.deepcopy(graph.train_graph), copy.deepcopy(graph.eval_graph)


class _TracedForward:
    """Runs traced code on `self`: the generated code reads `self.<name>` only, so it runs on the
    part as well as on the GraphModule it was made for. The code is a function made at run time,
    which pickle cannot save: the part pickles its graphs and makes the code again on loading."""

    _graphs: tuple[Graph, Graph]
    training: bool

    def _compile(self, graphs: tuple[Graph, Graph]) -> None:
        self._graphs = graphs
        # GraphModule(self, ...) refers to this part's own modules and becomes the graph's owner: give it a copy.
        self._forward_train, self._forward_eval = (type(GraphModule(self, copy.deepcopy(g))).forward
                                                   for g in graphs)

    def _run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        run = self._forward_train if self.training else self._forward_eval
        return run(self, x)

    def set_grad_checkpointing(self, enable: bool = True) -> int:
        """Refused (timm's name): the traced forward runs the blocks' layers, not the blocks, so none would
        recompute."""
        if enable:
            raise ConfigError(f"{self._described} runs its layers as one traced graph, which gradient checkpointing "
                              "does not reach: train it without `grad_checkpointing`, or the whole model")
        return 0

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # type: ignore[misc]
        state.pop("_forward_train", None)
        state.pop("_forward_eval", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._compile(self._graphs)


def _stage_index(model: ConvNet, name: str) -> int | None:
    names = [f.module for f in model.feature_info]
    return names.index(name) if name in names else None


def _flattens(module: nn.Module) -> bool:
    """Whether `module` ends in vectors, not a feature map: it holds a linear or flatten layer (a head,
    an MLP, or a whole network such as a multi-task net's `backbone`, whose output is its logits)."""
    return any(isinstance(m, (nn.Linear, nn.Flatten)) for m in module.modules())


def _flat_children(model: nn.Module) -> list[str]:
    skip = {"head", *getattr(model, "aux_names", ())}
    return [name for name, child in model.named_children() if name not in skip and _flattens(child)]


def layer_names(model: nn.Module) -> list[str]:
    """The names `truncate` takes: the model's top-level layers in order, then its feature stages, then
    the other cuts its layers name (`cut_names`: DenseNet's last block, a stage before timm's stages were
    taken); a layer whose output is not a feature map (N x C x H x W) cannot be cut at and is left out."""
    skip = {"head", *getattr(model, "aux_names", ()), *_flat_children(model)}
    names = [name for name, _ in model.named_children() if name not in skip]
    names += [f.module for f in getattr(model, "feature_info", []) if f.module not in names]
    for prefix, layer in model.named_modules():  # a backbone's own, under its name
        cuts = [f"{prefix}.{cut}" if prefix else cut for cut in getattr(layer, "cut_names", ())]
        names += [cut for cut in cuts if cut not in names]
    return names


def _not_a_feature_map(name: str, layer: str, gives: str, valid: list[str]) -> ConfigError:
    return ConfigError(f"cannot cut {name} at {layer!r}: it gives {gives}, not a feature map (N x C x H x W) "
                       f"to pool under a new head; choose one of: {', '.join(valid)}")


def _check_out_indices(model: ConvNet, out_indices: Sequence[int] | None) -> tuple[int, ...]:
    """`out_indices` as stage numbers from 0, each once and in range, else a ConfigError of one line."""
    info = model.feature_info
    name = getattr(model, "model_name", "") or type(model).__name__
    if out_indices is None:
        return tuple(range(len(info)))
    if (isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence)
            or any(not isinstance(i, Integral) or isinstance(i, bool) for i in out_indices)):
        raise ConfigError(f"out_indices must be a list of whole numbers (stages of {name}), got {out_indices!r}")
    indices = tuple(int(i) for i in out_indices)
    if not indices or any(not -len(info) <= i < len(info) for i in indices):
        raise ConfigError(f"out_indices {indices} out of range: {name} has {len(info)} feature stages "
                          f"({', '.join(f.module for f in info)})")
    positive = [i % len(info) for i in indices]
    if len(set(positive)) < len(positive):
        raise ConfigError(f"out_indices {indices} name a stage twice; give each stage of {name} once")
    return tuple(positive)


class FeatureInfoList(list):
    """A features_only model's `feature_info`: the chosen stages (FeatureInfo), in the order of `out_indices`,
    with timm's accessors. As timm's, their `idx` is a stage number of the source model (one, or a list), and
    without it they give the chosen stages: `channels()`, `reduction()`, `module_name()`, `get(key, idx)`,
    `get_dicts(keys, idx)`. `info` lists all the source's stages."""

    def __init__(self, stages: Sequence[FeatureInfo], out_indices: Sequence[int]):
        self.info = [FeatureInfo(f.module, f.num_chs, f.reduction) for f in stages]
        self.out_indices = tuple(out_indices)
        super().__init__(self.info[i] for i in self.out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """`key` ("num_chs", "reduction" or "module") of the chosen stages, or of the source's stage(s) `idx`."""
        if idx is None:
            return [stage[key] for stage in self]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        """timm's dicts (num_chs, reduction, module, index: the stage number) of the chosen stages or of `idx`."""
        def one(i: int) -> dict[str, Any]:
            entry = {**dict(self.info[i]), "index": i % len(self.info)}
            return entry if keys is None else {k: entry[k] for k in keys}

        if idx is None:
            return [one(i) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [one(i) for i in idx]
        return one(idx)

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """The stages' channels (num_chs)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """The stages' total strides."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """The stages' module names, as the source model names them."""
        return self.get("module", idx)


def _without_classifier(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pretrained_cfg without what described the source's classifier (its classes and their number, its name)."""
    return None if cfg is None else {k: v for k, v in cfg.items() if k not in ("classes", "num_classes", "classifier")}


class FeatureListNet(_TracedForward, nn.Module):
    """The feature maps of the chosen stages of a model, as a list in the order of `out_indices`;
    `feature_info` lists them in the same order."""

    def __init__(self, model: ConvNet, out_indices: Sequence[int] | None = None):
        super().__init__()
        info = getattr(model, "feature_info", None)
        if not info:
            raise ConfigError(f"{type(model).__name__} lists no feature stages (feature_info); "
                              "features_only needs them")
        self.out_indices = _check_out_indices(model, out_indices)
        self.feature_info = FeatureInfoList(info, self.out_indices)
        self.in_chans = model.in_chans
        self.data_config = model.data_config
        self.model_name = getattr(model, "model_name", "")
        # timm's pretrained_cfg, as timm's features_only models keep it (their resolvers read the input size, mean
        # and std there), without what the classifier no longer here would take
        self.pretrained_cfg = self.default_cfg = _without_classifier(getattr(model, "pretrained_cfg", None))
        self._compile(_adopt(self, model, {f.module: f.module for f in self.feature_info}))

    @property
    def _described(self) -> str:
        return f"{getattr(self, 'model_name', '') or 'the model'} built features_only"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """N x in_chans x H x W -> the maps in `feature_info` order, each N x num_chs x ~H/reduction x ~W/reduction."""
        maps = self._run(x)  # in the order of the graph
        return [maps[f.module] for f in self.feature_info]


class TruncatedNet(_TracedForward, ConvNet):
    """The layers of a model up to `layer` (inclusive), then global pool and a fresh linear head."""

    def __init__(self, model: ConvNet, layer: str, num_classes: int | None = None, drop_rate: float = 0.0):
        super().__init__()
        valid = layer_names(model)
        name = getattr(model, "model_name", "") or type(model).__name__
        if layer in _flat_children(model):
            raise _not_a_feature_map(name, layer, "vectors (it ends in a linear or flatten layer)", valid)
        if layer not in valid:
            raise ConfigError(f"unknown layer {layer!r} for {name}; choose one of: {', '.join(valid)}")
        self.until = layer
        self.num_classes = model.num_classes if num_classes is None else num_classes
        self.in_chans, self.data_config = model.in_chans, model.data_config
        self.model_name = getattr(model, "model_name", "")
        self.pretrained_cfg = _without_classifier(model.__dict__.get("pretrained_cfg"))  # (published weights': their
        # crop and interpolation; a fresh head of its own classes)
        self._compile(_adopt(self, model, {layer: "features"}))
        index = _stage_index(model, layer)
        if index is not None:
            kept = model.feature_info[:index + 1]
            self.feature_info = [FeatureInfo(f.module, f.num_chs, f.reduction) for f in kept]
        else:  # a layer between the listed stages: measure its output once
            kept = [f for f in model.feature_info if self._has(f.module)]
            size = self.data_config.input_size
            with modes_kept(self), torch.no_grad():
                out = self.eval().forward_features(torch.zeros(1, *size))
            if out.dim() != 4:  # pooling it under a new head would fail only in the first forward
                raise _not_a_feature_map(name, layer, f"an output of shape {tuple(out.shape)}", valid)
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
        """N x in_chans x H x W -> the output of `until`, N x num_features x h x w."""
        return self._run(x)["features"]

    @property
    def _described(self) -> str:
        return f"{self.model_name or 'the model'} cut at {self.until!r}"


def features_only(model: ConvNet, out_indices: Sequence[int] | None = None) -> FeatureListNet:
    """`model`'s feature maps at `out_indices` (indices into its feature_info; default all)."""
    return FeatureListNet(model, out_indices)


def truncate(model: ConvNet, layer: str, num_classes: int | None = None) -> TruncatedNet:
    """A new network: `model`'s layers up to `layer` (weights shared), global pool, fresh linear head."""
    return TruncatedNet(model, layer, num_classes)


__all__ = ["FeatureInfoList", "FeatureListNet", "TruncatedNet", "features_only", "layer_names", "truncate"]
