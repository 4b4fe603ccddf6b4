"""Parameter and multiply-accumulate counts.

MACs follow docs/REFERENCE.md's convention: Conv2d `H_out*W_out*C_out*(C_in/groups)*kH*kW` plus Linear
`in*out`, batch 1, nothing else (no BN, activations, pooling, adds or biases).
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from .._registry import get_entry, registered_name
from ..errors import ConfigError
from ..models._modes import modes_kept


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters, each shared tensor once; BN running statistics are buffers and not counted."""
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
    """`input_size` as a tuple, refused in one line where it has the batch in front (torchinfo's habit): four
    numbers for a 2-D convolutional network. (A model of other inputs, an MLP's (6,), passes.)"""
    size = tuple(int(v) for v in input_size)
    if len(size) == 4:
        raise ConfigError(not_chw(size))
    return size


def not_chw(size: tuple[int, ...]) -> str:
    """Why a forward at `size` (of other than three numbers) failed: an image is (C, H, W)."""
    return (f"input_size must be (channels, height, width) of one image, without the batch, got {size}"
            + (f"; give {size[1:]}" if len(size) == 4 else ""))


def inference_outputs(model: nn.Module, x: torch.Tensor):
    """What an eval-mode model computes for `x` at inference: every task head of a model of several tasks
    (e.g. lenet5_two_head's parity), the main output of any other (auxiliary heads run in training only)."""
    return model.forward_outputs(x) if getattr(model, "task_classes", None) else model(x)


def probe_input(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    """One zero image (batch 1) as the model takes it: where its parameters live, in their dtype (a model made
    .double() or .half())."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is None:
        return torch.zeros(1, *input_size)
    return torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)


def describe_input_error(model: nn.Module, input_size: Sequence[int], err: RuntimeError) -> str:
    """One line on why a forward pass at `input_size` failed, with the model's default size."""
    name = getattr(model, "model_name", "") or type(model).__name__
    config = getattr(model, "data_config", None)
    image_net = config is not None or any(isinstance(m, nn.Conv2d) for m in model.modules())
    if len(input_size) != 3 and image_net:  # (H and W alone, say, for an image network)
        return not_chw(tuple(input_size))
    given = "x".join(map(str, input_size))
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    default = tuple(config.input_size) if config is not None else None
    if default is None:
        return f"input {given} does not fit {name}: {reason}"
    expected = "x".join(map(str, default))
    if input_size[0] != default[0]:
        return f"{name} expects {default[0]}-channel input, got {given} (default size {expected})"
    if input_size[1] * input_size[2] < default[1] * default[2]:
        return f"input {given} is too small for {name} (default size {expected}): {reason}"
    if input_size[1] == input_size[2] and builds_for_size(name):  # (lenet5's flatten: built for 28 px)
        return (f"input {given} does not fit {name}, whose layers are built for {expected}: build it for "
                f"{input_size[1]} px with img_size={input_size[1]} (the CLI: --model-option img_size={input_size[1]})")
    return f"input {given} does not fit {name} (default size {expected}): {reason}"


def builds_for_size(name: str) -> bool:
    """Whether the registered model `name` takes an img_size to build its layers for (e.g. lenet5's head)."""
    return registered_name(name) is not None and "img_size" in inspect.signature(get_entry(name).fn).parameters


def probe_forward(model: nn.Module, input_size: Sequence[int], run=inference_outputs):
    """`run(model, one zero image)` in eval mode (each module's mode restored after), without gradients; a forward
    that fails on the input's size or channels is one ConfigError line (`describe_input_error`)."""
    with modes_kept(model), torch.no_grad():
        model.eval()
        try:
            return run(model, probe_input(model, input_size))
        except RuntimeError as err:
            raise ConfigError(describe_input_error(model, input_size, err)) from err


def count_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """Conv2d + Linear MACs of one eval-mode forward pass at `input_size` (C, H, W), batch 1 (every task head
    included: `inference_outputs`).

    The input is made where the model's parameters live, in their dtype; a model built under
    `torch.device("meta")` is counted from shapes alone, in milliseconds even for Inception-v4. An input the
    model cannot take is one ConfigError line, as `summary` says it.
    """
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
