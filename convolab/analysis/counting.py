"""Parameter and multiply-accumulate counts.

MACs follow docs/REFERENCE.md's convention: Conv2d `H_out*W_out*C_out*(C_in/groups)*kH*kW` plus Linear
`in*out`, batch 1, nothing else (no BN, activations, pooling, adds or biases).
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn

from ..errors import ConfigError
from ..models._probe import not_chw, probe_forward


def check_module(model: object) -> None:
    """A ConfigError of one line where `model` is not a module (a name, a tensor): what count_params, count_macs
    and summary take, said before an AttributeError from inside them."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch nn.Module, got {type(model).__name__} {model!r:.60}; build one "
                          "with convolab.create_model(NAME)")


def is_whole(value: object) -> bool:
    """An int or one of numpy's (numbers.Integral), not a bool: what a size or a depth is (as ops/shapes.py's)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters, each shared tensor once; BN running statistics are buffers and not counted."""
    check_module(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one Conv2d or Linear call producing `output` (batch 1); 0 for other modules."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return int(output[0].numel()) * per_output
    if isinstance(module, nn.Linear):
        rows = output.numel() // output.shape[0] // module.out_features
        return rows * module.in_features * module.out_features
    return 0


def one_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    """`input_size` as a tuple of ints, refused in one line where it is not whole numbers >= 1 (1.5 was truncated
    to 1 before, "1,28,28" read a character at a time) or has the batch in front (torchinfo's habit): four
    numbers for a 2-D convolutional network. (A model of other inputs, an MLP's (6,), passes.)"""
    try:
        size = tuple(input_size) if not isinstance(input_size, (str, bytes)) else None
    except TypeError:  # (not iterable: a bare number)
        size = None
    if not size or not all(is_whole(v) and v >= 1 for v in size):
        raise ConfigError(f"input_size must be whole numbers >= 1, (channels, height, width) of one image, got "
                          f"{input_size!r:.80}")
    size = tuple(int(v) for v in size)
    if len(size) == 4:
        raise ConfigError(not_chw(size))
    return size


def count_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """Conv2d + Linear MACs of one eval-mode forward pass at `input_size` (C, H, W), batch 1 (every task head
    included: `inference_outputs`).

    The input is made where the model's parameters live, in their dtype; a model built under
    `torch.device("meta")` is counted from shapes alone, in milliseconds even for Inception-v4. An input the
    model cannot take is one ConfigError line, as `summary` says it.
    """
    check_module(model)
    input_size = one_input_size(input_size)
    total = 0

    def hook(module: nn.Module, _inputs, output) -> None:
        nonlocal total
        total += layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        probe_forward(model, input_size)
    finally:
        for h in handles:
            h.remove()
    return total
