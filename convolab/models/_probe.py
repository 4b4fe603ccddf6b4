"""One forward pass of a zero image, as counting, summaries, drawings and the training forecast make it: a
failure on the input's size or channels said in one line that names the size the model takes, the same line
wherever it is met (`count_macs`, `summary`, `Trainer` before a run), not torch's error from deep inside."""
from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .._registry import get_entry, registered_name
from ..errors import ConfigError
from ..layers.frozen_norm import FrozenBatchNorm2d
from ._factory import create_model
from ._modes import modes_kept


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


def not_chw(size: tuple[int, ...]) -> str:
    """Why a forward at `size` (of other than three numbers) failed: an image is (C, H, W)."""
    return (f"input_size must be (channels, height, width) of one image, without the batch, got {size}"
            + (f"; give {size[1:]}" if len(size) == 4 else ""))


def describe_input_error(model: nn.Module, input_size: Sequence[int], err: RuntimeError) -> str:
    """One line on why a forward pass at `input_size` failed, with the model's default size; for a registered
    model that builds its layers for a size (lenet5's head), the img_size that would take this input, where one
    does, rather than "too small" and torch's matrix shapes."""
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
    if input_size[1] == input_size[2] and fits_when_built_for(model, input_size):  # (lenet5's flatten: 28 px)
        return (f"input {given} does not fit {name}, whose layers are built for {expected}: build it for "
                f"{input_size[1]} px with img_size={input_size[1]} (`model_options` img_size={input_size[1]})")
    if input_size[1] != input_size[2] and builds_for_size(name):  # (lenet5 at 32x40: not torch's matrix shapes)
        return (f"input {given} does not fit {name}, whose layers are built for one square size ({expected}; "
                "`model_options` img_size=N builds them for N x N): give a square input")
    if input_size[1] * input_size[2] < default[1] * default[2]:
        side = smallest_side(model, input_size[0], min(input_size[1:]), min(default[1:]))
        least = f"; its layers need at least {side}x{side}" if side is not None else ""
        return f"input {given} is too small for {name} (default size {expected}{least}): {reason}"
    return f"input {given} does not fit {name} (default size {expected}): {reason}"


def builds_for_size(name: str) -> bool:
    """Whether the registered model `name` takes an img_size to build its layers for (e.g. lenet5's head)."""
    return registered_name(name) is not None and "img_size" in inspect.signature(get_entry(name).fn).parameters


def fits_when_built_for(model: nn.Module, input_size: Sequence[int]) -> bool:
    """Whether `model`, a registered one that takes an img_size, built again for this input's side (its other
    options as they are) takes the input: shapes alone, on the meta device (nothing allocated)."""
    name = getattr(model, "model_name", "")
    if not name or not builds_for_size(name):
        return False
    options = {**getattr(model, "model_options", {}), "img_size": int(input_size[1])}
    return runs_on_meta(name, options, input_size)


def runs_on_meta(name: str, options: dict, input_size: Sequence[int]) -> bool:
    """Whether the registered model `name`, built with `options` and `input_size`'s channels on the meta device
    (shapes alone: nothing allocated), takes an input of `input_size` in eval mode."""
    try:
        with torch.device("meta"), torch.no_grad():
            rebuilt = create_model(name, in_chans=int(input_size[0]), **options).eval()
            inference_outputs(rebuilt, torch.zeros(1, *input_size))
    except Exception:  # (too small for any build, lenet5 at 8 px: whatever a builder raises, the answer is no)
        return False
    return True


def smallest_side(model: nn.Module, in_chans: int, low: int, high: int) -> int | None:
    """The smallest square side a registered model takes, between `low` (refused) and `high` (its own: taken), by
    bisection on the meta device (shapes alone); None for another model, or one whose layers are built for its
    size (lenet5's flatten: it refuses twice its size, and `img_size` is the advice there)."""
    name = getattr(model, "model_name", "")
    if not name or registered_name(name) is None:
        return None

    def fits(px: int) -> bool:
        return runs_on_meta(name, getattr(model, "model_options", {}), (in_chans, px, px))

    if not fits(high) or not fits(2 * high):
        return None
    while high - low > 1:  # low refused, high taken
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def probe_forward(model: nn.Module, input_size: Sequence[int], run=inference_outputs):
    """`run(model, one zero image)` in eval mode (each module's mode restored after), without gradients; a forward
    that fails on the input's size or channels is one ConfigError line (`describe_input_error`)."""
    with modes_kept(model), torch.no_grad(), norms_passed_through_on_meta(model):
        model.eval()
        try:
            return run(model, probe_input(model, input_size))
        except RuntimeError as err:
            raise ConfigError(describe_input_error(model, input_size, err)) from err


@contextlib.contextmanager
def norms_passed_through_on_meta(model: nn.Module) -> Iterator[None]:
    """On the meta device, each batch norm (trainable or frozen) gives its input back while the block runs: its
    output has its input's shape, and torch computes it there through Python decompositions (a third of
    `convolab models`' time); one given an input of other than its channels still runs, and says so as before."""
    norms = [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d))
             and getattr(m, "running_mean", None) is not None and m.running_mean.is_meta]
    for norm in norms:
        norm.forward = functools.partial(_same_shape, norm, type(norm).forward.__get__(norm))
    try:
        yield
    finally:
        for norm in norms:
            del norm.forward


def _same_shape(norm: nn.Module, forward, x: torch.Tensor) -> torch.Tensor:
    return x if x.dim() > 1 and x.shape[1] == norm.num_features else forward(x)
