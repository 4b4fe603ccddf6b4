"""Freezing the backbone (its batch norm stays in eval mode) and a lower learning rate for it."""
from __future__ import annotations

import types

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def head_modules(model: nn.Module) -> list[nn.Module]:
    """The classifier (`get_classifier()`) and every auxiliary or task head: what is not backbone."""
    heads = [model.get_classifier()] if hasattr(model, "get_classifier") else []
    heads += [getattr(model, name) for name in getattr(model, "aux_names", ())]
    return [m for m in heads if m is not None]


def head_parameter_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in head_modules(model) for p in m.parameters()}


def _train_stays_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    # A frozen BN layer keeps normalizing with the statistics it was trained with and never updates them.
    return nn.Module.train(self, False)


def freeze_backbone(model: nn.Module) -> list[str]:
    """requires_grad=False on every parameter outside the heads; frozen BN layers stay in eval
    mode through `model.train()`. Returns the names of the frozen parameters."""
    heads = head_parameter_ids(model)
    frozen = []
    for name, p in model.named_parameters():
        if id(p) not in heads:
            p.requires_grad_(False)
            frozen.append(name)
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.train = types.MethodType(_train_stays_eval, module)  # instance override: survives deepcopy
            module.eval()
    return frozen


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


__all__ = ["backbone_lr_groups", "freeze_backbone", "head_modules"]
