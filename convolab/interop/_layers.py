"""The check every converter makes before loading: a peer whose weight-free layers or settings differ from
ours (a pool replaced by another kind or by nn.Identity, another BN eps, another activation) loads the same
weights and gives other outputs, so it is refused in one line naming the layer.

Layers are paired by name. `rules` say where our layer lives in the peer: `(regex, peer_name)`, the regex
matched against our layer's whole name, `peer_name` a template (`\\1`), a tuple of templates (a layer of ours the
peer has as several, as our block's one `relu` is timm's `act1`, `act2`, `act3`), or None for a layer of ours only
(one the peer's forward applies as a function, as torchvision's `F.relu`). A name no rule matches is the peer's too.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import nn

from ._converters import UnsupportedArchitectureError

Rules = Sequence[tuple[str, str | tuple[str, ...] | None]]


def config(module: nn.Module) -> tuple:
    """What a parameter-free setting of `module` changes in its eval output (its weights' shapes are the
    load's; BN momentum and dropout change training only, and are copied instead)."""
    if isinstance(module, nn.Conv2d):
        return (module.kernel_size, module.stride, module.padding, module.dilation, module.groups,
                module.padding_mode)
    if isinstance(module, nn.BatchNorm2d):
        return (module.eps, module.affine, module.track_running_stats)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = module.output_size
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if isinstance(module, nn.AvgPool2d):  # (its extra_repr leaves out ceil_mode and count_include_pad)
        return (module.kernel_size, module.stride, module.padding, module.ceil_mode, module.count_include_pad,
                module.divisor_override)
    if isinstance(module, (nn.ReLU, nn.Linear, nn.Dropout)):
        return ()
    return (module.extra_repr(),)


def leaves(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if name and next(m.children(), None) is None}


def describe(module: nn.Module | None) -> str:
    """One line: a layer with its settings; a container by its kind only, unless it has settings of its own
    (timm's BatchNormAct2d)."""
    if module is None:
        return "missing"
    settings = module.extra_repr()
    if not settings and next(module.children(), None) is not None:
        settings = "..."
    return f"{type(module).__name__}({settings})"


def peer_names(name: str, rules: Rules) -> tuple[str, ...]:
    """Where our layer `name` lives in the peer (see the module's docstring); none: ours only."""
    for pattern, template in rules:
        found = re.fullmatch(pattern, name)
        if found:
            templates = () if template is None else (template,) if isinstance(template, str) else template
            return tuple(found.expand(t) for t in templates)
    return (name,)


def classifier_classes(peer: nn.Module, attr: str, library: str) -> int:
    """The classes of the peer's classifier `attr`: an nn.Linear's outputs, 0 for nn.Identity (a model without
    a classifier, as timm's `reset_classifier(0)` and `model.fc = nn.Identity()` make); anything else refused."""
    fc = getattr(peer, attr)
    if isinstance(fc, nn.Identity):
        return 0
    if not isinstance(fc, nn.Linear):
        raise UnsupportedArchitectureError(
            f"{library} {type(peer).__name__} with a {type(fc).__name__} as `{attr}`: convolab converts a single "
            "nn.Linear classifier (or nn.Identity, for a model without one) only")
    return fc.out_features


def match_layers(ours: nn.Module, peer: nn.Module, library: str, rules: Rules,
                 stand_ins: Mapping[str, type[nn.Module]] | None = None) -> None:
    """Refuse, by name, a peer whose layers differ from ours in kind or setting, or that has a layer ours has
    not; then give ours the peer's training-only settings (BN momentum, dropout rate), so that fine-tuning the
    converted model updates its statistics as the peer would. `stand_ins`: a peer class name -> our layer type
    it is, its children checked as layers of their own (timm's BatchNormAct2d: a BatchNorm2d with its `act`)."""
    arch, stand_ins = type(peer).__name__, stand_ins or {}
    everything, pairs = dict(peer.named_modules()), []
    for name, mine in leaves(ours).items():
        for theirs_name in peer_names(name, rules):
            found = everything.get(theirs_name)
            kind = stand_ins.get(type(found).__name__, type(found))
            if kind is not type(mine) or config(found) != config(mine):
                raise UnsupportedArchitectureError(
                    f"{library} {arch} with `{theirs_name}` = {describe(found)}, where convolab's {arch} has "
                    f"{describe(mine)}: its outputs would differ; convolab converts the stock {arch} layers only")
            pairs.append((mine, found, theirs_name))
    matched = {theirs_name for _, _, theirs_name in pairs}
    extra = [n for n, m in leaves(peer).items() if n not in matched and not isinstance(m, nn.Identity)]
    if extra:
        raise UnsupportedArchitectureError(
            f"{library} {arch} with `{extra[0]}` = {describe(everything[extra[0]])}, which convolab's {arch} does "
            f"not have; convolab converts the stock {arch} layers only")
    for mine, found, _ in pairs:
        if isinstance(mine, nn.BatchNorm2d):
            mine.momentum = found.momentum
        elif isinstance(mine, nn.Dropout):
            mine.p = found.p
