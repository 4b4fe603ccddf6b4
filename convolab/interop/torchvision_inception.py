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
from ._layers import Rules, classifier_classes, match_layers


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


# Our layers the peers' forward applies as functions (BasicConv2d's and the aux heads' F.relu, the blocks'
# F.avg_pool2d / F.max_pool2d), GoogLeNet's LRN places (torchvision has none), and the head's renames.
_HEAD: Rules = ((r"head\.fc", "fc"), (r"head\.pool", "avgpool"), (r"head\.drop", "dropout"),
                (r"head\.flatten", None), (r".*\.act", None))
_GOOGLENET: Rules = (*_HEAD, (r"lrn[12]", None), (r"aux[12]\.(pool|flatten)", None),
                     (r"(aux[12])\.drop", r"\1.dropout"))
# (Inception-v3's block and aux-head pools, functions in torchvision's forward and timm's alike)
INCEPTION3_POOLS: Rules = ((r"Mixed_\w+\.pool", None), (r"aux\.(pool|global_pool|flatten)", None))
_INCEPTION3: Rules = (*_HEAD, *INCEPTION3_POOLS, (r"aux\.(.+)", r"AuxLogits.\1"))


def refuse_aux_without_classifier(peer: nn.Module, library: str, name: str, aux: bool, num_classes: int) -> None:
    """A peer with auxiliary heads but no classifier (`fc` = nn.Identity): ours without one has no aux heads."""
    if aux and num_classes == 0:
        raise UnsupportedArchitectureError(
            f"{library} {type(peer).__name__} with `fc` = Identity() and auxiliary heads: convolab's "
            f"{name} without a classifier (num_classes=0) has none; build it with aux_logits=False or keep "
            "an nn.Linear `fc`")


def _convert(peer: nn.Module, name: str, aux_attr: str, aux_prefixes: dict[str, str], rules: Rules,
             first_conv: nn.Conv2d) -> nn.Module:
    num_classes = classifier_classes(peer, "fc", "torchvision")
    aux = getattr(peer, aux_attr) is not None
    refuse_aux_without_classifier(peer, "torchvision", name, aux, num_classes)
    ours = create_model(name, num_classes=num_classes, in_chans=first_conv.in_channels, aux_logits=aux,
                        transform_input=bool(peer.transform_input))
    match_layers(ours, peer, "torchvision", rules)
    state = rename_keys(peer.state_dict(), {"fc": "head.fc", **aux_prefixes})
    return load_converted(ours.to(first_conv.weight.device, first_conv.weight.dtype), state, peer)


@converter("torchvision", "GoogLeNet")
def from_torchvision_googlenet(peer: nn.Module) -> nn.Module:
    """torchvision `googlenet(...)` -> our `googlenet_tv`: same classes, aux heads, input transform."""
    return _convert(peer, "googlenet_tv", "aux1", {}, _GOOGLENET, peer.conv1.conv)


@converter("torchvision", "Inception3")
def from_torchvision_inception3(peer: nn.Module) -> nn.Module:
    """torchvision `inception_v3(...)` -> our `inception_v3`: same classes, aux head, input transform."""
    return _convert(peer, "inception_v3", "AuxLogits", {"AuxLogits": "aux"}, _INCEPTION3, peer.Conv2d_1a_3x3.conv)
