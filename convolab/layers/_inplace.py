"""In-place activations after a norm that may give its input back (an `nn.Identity` norm_layer)."""
from __future__ import annotations

import torch


def not_the_input(normed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`normed`, copied where it is `x` itself (a norm_layer of `nn.Identity` returns its input), so that an in-place
    activation after it writes neither the caller's tensor nor the one a shortcut adds; as is otherwise (a norm's
    output is a new tensor, and the in-place ReLU on it saves memory as before)."""
    return normed.clone() if normed is x else normed
