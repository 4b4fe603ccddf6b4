"""timm InceptionV3, InceptionV4 and InceptionResnetV2 -> convolab `inception_v3`, `inception_v4` and
`inception_resnet_v2`.

Our module names follow timm's, so converting is renaming the classifier (`fc` / `last_linear` /
`classif` -> `head.fc`, v3's `AuxLogits` -> `aux`) and a strict load.
"""
from __future__ import annotations

import re

from torch import nn

from ..models import create_model
from ._converters import converter
from ._layers import Rules, classifier_classes, match_layers
from ._timm import HEAD_RULES, STAND_INS, refuse_other_pools
from .torchvision_inception import INCEPTION3_POOLS, load_converted, refuse_aux_without_classifier, rename_keys

# timm writes IR-v2's Mixed_5b with numbered branches; ours is Inception-v3's module A.
MIXED_5B_KEYS = {
    "mixed_5b.branch0": "mixed_5b.branch1x1",
    "mixed_5b.branch1.0": "mixed_5b.branch5x5_1",
    "mixed_5b.branch1.1": "mixed_5b.branch5x5_2",
    "mixed_5b.branch2.0": "mixed_5b.branch3x3dbl_1",
    "mixed_5b.branch2.1": "mixed_5b.branch3x3dbl_2",
    "mixed_5b.branch2.2": "mixed_5b.branch3x3dbl_3",
    "mixed_5b.branch3.0": "mixed_5b.pool",  # (no weights: for the layer check)
    "mixed_5b.branch3.1": "mixed_5b.branch_pool",
}

# timm's conv blocks apply their activation inside the BN (BatchNormAct2d's `act`); IR-v2's Block8 calls its
# activation `relu` (None in the last block, whose Identity is ours only).
_RULES: Rules = (*HEAD_RULES, (r"block8\.act", None), (r"(repeat_2\.\d+)\.act", r"\1.relu"),
                 (r"(repeat(_1)?\.\d+)\.act", r"\1.act"), (r"(.+)\.act", r"\1.bn.act"))
# Inception-v3: timm names the stem's pools Pool1/Pool2 and the aux head AuxLogits, and applies the blocks' and the
# aux head's pools as functions, as torchvision does.
_INCEPTION3: Rules = ((r"maxpool(\d)", r"Pool\1"), *INCEPTION3_POOLS, (r"aux\.(.+)\.act", r"AuxLogits.\1.bn.act"))


def _convert(peer: nn.Module, name: str, fc_name: str, renames: dict[str, str] | None = None,
             rules: Rules = (), **options) -> nn.Module:
    refuse_other_pools(peer)
    num_classes = classifier_classes(peer, fc_name, "timm")
    # (the input channels read off the first convolution: timm's Inception models hold `in_chans` only from timm
    # 1.0.25, and `timm>=1.0` is what convolab declares)
    first = next(m for m in peer.modules() if isinstance(m, nn.Conv2d))
    ours = create_model(name, num_classes=num_classes, in_chans=first.in_channels, drop_rate=peer.head_drop.p,
                        **options)
    # our layer's name -> the peer's: the renames (given peer -> ours) reversed, then the rules
    back = [rule for theirs, mine in (renames or {}).items() for rule in (
        (re.escape(mine) + r"\.act", theirs + ".bn.act"), (re.escape(mine) + r"(\..+)?", theirs + r"\1"))]
    match_layers(ours, peer, "timm", ((r"head\.fc", fc_name), *rules, *back, *_RULES), stand_ins=STAND_INS)
    state = rename_keys(peer.state_dict(), {fc_name: "head.fc", **(renames or {})})
    param = next(peer.parameters())
    return load_converted(ours.to(param.device, param.dtype), state, peer)


@converter("timm", "InceptionV4")
def from_timm_inception_v4(peer: nn.Module) -> nn.Module:
    """timm `inception_v4` -> our `inception_v4` with the same classes and input channels."""
    return _convert(peer, "inception_v4", "last_linear")


@converter("timm", "InceptionResnetV2")
def from_timm_inception_resnet_v2(peer: nn.Module) -> nn.Module:
    """timm `inception_resnet_v2` -> our `inception_resnet_v2` with the same classes and input channels."""
    return _convert(peer, "inception_resnet_v2", "classif", MIXED_5B_KEYS)


@converter("timm", "InceptionV3")
def from_timm_inception_v3(peer: nn.Module) -> nn.Module:
    """timm `inception_v3` -> our `inception_v3` with the same classes, input channels and aux head (timm's
    weights expect the input normalized by their own mean and std: no input transform)."""
    aux = peer.AuxLogits is not None
    refuse_aux_without_classifier(peer, "timm", "inception_v3", aux, classifier_classes(peer, "fc", "timm"))
    return _convert(peer, "inception_v3", "fc", {"AuxLogits": "aux"} if aux else None, _INCEPTION3,
                    aux_logits=aux, transform_input=False)
