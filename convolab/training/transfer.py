"""What a run needs to start from other weights: loading what matches by name and shape (with a
report naming everything else, never dropped silently), freezing the backbone (its batch norm
becomes `FrozenBatchNorm2d`), and a lower learning rate for the backbone.

`convolab.finetune` re-exports these; they live here because the training engine uses them
(`--init-from`, `--freeze-backbone`, `--backbone-lr-scale`) and training comes before finetune.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import CheckpointError
from ..layers.frozen_norm import FrozenBatchNorm2d
from .checkpoint import served_weights


# ----- loading matching weights ------------------------------------------------------------------------
def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


@dataclass
class LoadReport:
    """Which entries of a state dict were loaded into a model, and which were skipped and why."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)   # in the checkpoint, not in the model
    # (name, shape in the checkpoint, shape in the model)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """Every name not loaded: missing, unexpected and shape-mismatched."""
        return sorted(self.missing + self.unexpected + [name for name, _, _ in self.mismatched])

    def summary(self) -> str:
        """One line: how many tensors were loaded, and each skipped name with its reason."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        parts = [f"loaded {len(self.loaded)} of the model's {total} tensors"]
        if self.mismatched:
            shapes = ", ".join(f"{n} ({_dims(c)} in checkpoint, {_dims(m)} in model)"
                               for n, c, m in self.mismatched)
            parts.append(f"shape-mismatched: {shapes}")
        if self.missing:
            parts.append(f"missing (left as initialized): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected (not used): {', '.join(self.unexpected)}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """For JSON: the count loaded, the names missing and unexpected, and each mismatch with both shapes."""
        return {"loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": [[n, list(c), list(m)] for n, c, m in self.mismatched]}


# The prefixes DistributedDataParallel (`module.`) and torch.compile (`_orig_mod.`) put before every name.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def plain_weights(state_dict: Mapping[str, Any], own: Mapping[str, Any]) -> Mapping[str, Any]:
    """The weights `state_dict` holds, named as a model's are: a convolab checkpoint's served weights (`best.pt`
    read whole, not its 'model' entry), and names without the prefix a wrapper put before all of them."""
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()) and "model" in state_dict:
        state_dict = served_weights(dict(state_dict))
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict) and not any(k.startswith(prefix) for k in own):
                state_dict, changed = {k[len(prefix):]: v for k, v in state_dict.items()}, True
    return state_dict


def load_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy into `model` every entry of `state_dict` whose name and shape match; report the rest. A whole
    convolab checkpoint gives its served weights, and names a wrapper prefixed (`module.` of DDP, `_orig_mod.`
    of torch.compile) are read without it; a state dict of which nothing matches is one CheckpointError line."""
    own = model.state_dict()
    state_dict = plain_weights(state_dict, own)
    report, loadable = LoadReport(), {}
    for name, value in state_dict.items():
        if name not in own:
            report.unexpected.append(name)
        elif not isinstance(value, torch.Tensor) or value.shape != own[name].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else ()
            report.mismatched.append((name, shape, tuple(own[name].shape)))
        else:
            loadable[name] = value
            report.loaded.append(name)
    report.missing = [name for name in own if name not in state_dict]
    if own and not report.loaded:
        theirs = next(iter(state_dict), None)
        example = f" (e.g. {theirs!r} there, {next(iter(own))!r} in the model)" if theirs else ""
        raise CheckpointError(f"none of the state dict's {len(state_dict)} entries matches any of the model's "
                              f"{len(own)} tensors by name and shape{example}: give the weights of a model of this "
                              "architecture")
    result = model.load_state_dict(loadable, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # filtered above
    return report


# ----- freezing the backbone -----------------------------------------------------------------------
def head_modules(model: nn.Module) -> list[nn.Module]:
    """The classifier (`get_classifier()`) and every auxiliary or task head: what is not backbone."""
    heads = [model.get_classifier()] if hasattr(model, "get_classifier") else []
    heads += [getattr(model, name) for name in getattr(model, "aux_names", ())]
    return [m for m in heads if m is not None]


def head_parameter_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in head_modules(model) for p in m.parameters()}


def freeze_backbone(model: nn.Module) -> list[str]:
    """requires_grad=False on every parameter outside the heads, and every batch-norm layer left
    without a trainable parameter replaced by a `FrozenBatchNorm2d` of its statistics (it keeps
    normalizing with them through `model.train()`). Returns the names of the frozen parameters."""
    heads = head_parameter_ids(model)
    frozen = []
    for name, p in model.named_parameters():
        if id(p) not in heads:
            p.requires_grad_(False)
            frozen.append(name)
    _freeze_norms(model, {})
    return frozen


def _freeze_norms(module: nn.Module, done: dict[int, FrozenBatchNorm2d]) -> None:
    """Replace, below `module`, each BN layer with running statistics and no trainable parameter;
    `done` keeps a layer registered under two names one layer. (A FrozenBatchNorm2d is no `_BatchNorm`:
    freezing twice leaves it as it is.)"""
    for name, child in module.named_children():
        if (isinstance(child, _BatchNorm) and child.track_running_stats
                and not any(p.requires_grad for p in child.parameters())):
            if id(child) not in done:
                done[id(child)] = FrozenBatchNorm2d.from_batchnorm(child)
            setattr(module, name, done[id(child)])
        else:
            _freeze_norms(child, done)


def backbone_lr_groups(model: nn.Module, groups: list[dict], lr_scale: float) -> list[dict]:
    """Each optimizer group split in a head part and a backbone part whose `lr_scale` is `lr_scale`
    (the engine multiplies the scheduled learning rate by a group's `lr_scale`). Heads come first."""
    heads = head_parameter_ids(model)
    head_groups, backbone_groups = [], []
    for group in groups:
        head = [p for p in group["params"] if id(p) in heads]
        backbone = [p for p in group["params"] if id(p) not in heads]
        if head:
            head_groups.append({**group, "params": head})
        if backbone:
            backbone_groups.append({**group, "params": backbone, "lr_scale": lr_scale})
    return head_groups + backbone_groups


__all__ = ["LoadReport", "backbone_lr_groups", "freeze_backbone", "head_modules", "load_matching"]
