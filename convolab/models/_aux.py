"""What GoogLeNet and Inception-v3 share: optional auxiliary heads with one stable output API.

`model(x)` always returns the main logits; `model.forward_outputs(x)` returns
`{"main": ..., "aux1": ..., ...}` with every auxiliary head present, in train and eval mode alike.
A model built with `aux_logits=False` loads a state dict saved with the heads: `load_state_dict`
drops the `<aux>.*` keys of the heads this model does not have, then loads as usual (strict
loading still catches every other missing or unexpected key).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ._base import ConvNet, move_like


def drop_aux_keys(state_dict: Mapping[str, Any], aux_names: tuple[str, ...]) -> dict[str, Any]:
    """The state dict without the entries of the named auxiliary heads."""
    prefixes = tuple(f"{name}." for name in aux_names)
    return {k: v for k, v in state_dict.items() if not k.startswith(prefixes)}


class AuxClassifierNet(ConvNet):
    """A ConvNet whose auxiliary heads (`possible_aux`, attributes that may be None) are optional."""

    possible_aux: tuple[str, ...] = ()

    def _set_aux_names(self) -> None:
        self.aux_names = tuple(n for n in self.possible_aux if getattr(self, n) is not None)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(final feature map, {aux name: input of that head}); subclasses implement."""
        raise NotImplementedError

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"main": logits}` plus one logits entry per auxiliary head this model has, in any mode."""
        features, taps = self.forward_aux(x)
        outputs = {"main": self.forward_head(features)}
        for name in self.aux_names:
            outputs[name] = getattr(self, name)(taps[name])
        return outputs

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """As ConvNet's, and each auxiliary head this model has gets a fresh final layer for `num_classes` too."""
        reference = next(self.parameters(), None)
        super().reset_classifier(num_classes, global_pool)
        for name in self.aux_names:
            getattr(self, name).reset(num_classes)
            move_like(getattr(self, name), reference)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load as nn.Module does, after dropping the keys of auxiliary heads this model was built without."""
        missing = tuple(n for n in self.possible_aux if n not in self.aux_names)
        return super().load_state_dict(drop_aux_keys(state_dict, missing), strict=strict, assign=assign)


__all__ = ["AuxClassifierNet", "drop_aux_keys"]
