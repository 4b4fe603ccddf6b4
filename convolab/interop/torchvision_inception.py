"""torchvision GoogLeNet and Inception3 -> convolab `googlenet_tv` and `inception_v3`.

Our module names follow torchvision's, so converting is renaming the classifier (`fc` ->
`head.fc`, `AuxLogits` -> `aux`) and a strict load; a shape that differs (a modified peer)
is refused, never loaded in part.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..models import create_model
from ._converters import UnsupportedArchitectureError, converter


def rename_keys(state_dict: Mapping[str, torch.Tensor],
                prefixes: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The state dict with each key's leading `old.` prefix replaced by `new.` (first match)."""
    out = {}
    for key, value in state_dict.items():
        for old, new in prefixes.items():
            if key.startswith(old + "."):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _mismatch(ours: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The first tensor that a strict load of `state_dict` into `ours` would refuse, in words; None if none."""
    mine = ours.state_dict()
    for key, value in state_dict.items():
        if key not in mine:
            return f"it has {key}, which convolab's has not"
        if tuple(value.shape) != tuple(mine[key].shape):
            shape, expected = "x".join(map(str, value.shape)), "x".join(map(str, mine[key].shape))
            return f"its {key} is {shape or 'a scalar'}, convolab's {expected or 'a scalar'}"
    missing = next((key for key in mine if key not in state_dict), None)
    return None if missing is None else f"it lacks {missing}, which convolab's has"


def load_converted(ours: nn.Module, state_dict: Mapping[str, torch.Tensor], peer: nn.Module) -> nn.Module:
    """Strictly load `state_dict` into `ours`, in `peer`'s train/eval mode; a mismatch is refused in one line
    naming the first tensor that differs (a modified peer: a layer of other channels or kernel size)."""
    what = f"{type(peer).__name__} does not match convolab's {type(ours).__name__}"
    mismatch = _mismatch(ours, state_dict)
    if mismatch is not None:
        raise UnsupportedArchitectureError(f"{what}: {mismatch}; convolab converts the stock architecture only")
    try:
        ours.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # (what _mismatch does not foresee: torch's own words, first line)
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err).strip())
        raise UnsupportedArchitectureError(f"{what}: {first}") from None
    return ours.train(peer.training)


def _convert(peer: nn.Module, name: str, aux_attr: str, aux_prefixes: dict[str, str],
             first_conv: nn.Conv2d) -> nn.Module:
    fc = peer.fc
    aux = getattr(peer, aux_attr) is not None
    ours = create_model(name, num_classes=fc.out_features, in_chans=first_conv.in_channels, aux_logits=aux,
                        transform_input=bool(peer.transform_input))
    ours.head.drop.p = peer.dropout.p
    state = rename_keys(peer.state_dict(), {"fc": "head.fc", **aux_prefixes})
    return load_converted(ours.to(fc.weight.device, fc.weight.dtype), state, peer)


@converter("torchvision", "GoogLeNet")
def from_torchvision_googlenet(peer: nn.Module) -> nn.Module:
    """torchvision `googlenet(...)` -> our `googlenet_tv`: same classes, aux heads, input transform."""
    ours = _convert(peer, "googlenet_tv", "aux1", {}, peer.conv1.conv)
    for name in ours.aux_names:
        getattr(ours, name).drop.p = getattr(peer, name).dropout.p
    return ours


@converter("torchvision", "Inception3")
def from_torchvision_inception3(peer: nn.Module) -> nn.Module:
    """torchvision `inception_v3(...)` -> our `inception_v3`: same classes, aux head, input transform."""
    return _convert(peer, "inception_v3", "AuxLogits", {"AuxLogits": "aux"}, peer.Conv2d_1a_3x3.conv)
