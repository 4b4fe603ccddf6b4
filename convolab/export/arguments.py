"""The arguments every export takes, checked before any work: a module, an image's (C, H, W) and a batch size, each
refused in one line naming it, and an input the model cannot take said as `summary` says it (not an
AttributeError, a TypeError or torch's shapes from deep inside)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..analysis.counting import check_module, is_whole
from ..errors import ConfigError
from ..models._probe import describe_input_error


def checked_sizes(model: object, input_size: object, batch_size: object,
                  dynamic_batch: bool) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """`model` a module, `input_size` three whole numbers >= 1 (C, H, W) and `batch_size` one, each refused in one
    line; (the input size as ints, the batch sizes the check runs: the fixed one, or two for a dynamic batch)."""
    check_module(model)  # (as `summary` refuses a model's name)
    try:
        size = tuple(input_size) if not isinstance(input_size, (str, bytes)) else ()  # type: ignore[arg-type]
    except TypeError:  # (not iterable: a bare number)
        size = ()
    if len(size) != 3 or not all(is_whole(v) and v >= 1 for v in size):
        raise ConfigError(f"`input_size` must be a tuple of 3 positive ints, (channels, height, width) of one image "
                          f"without the batch, got {input_size!r:.80}; e.g. (3, 32, 32)")
    if not is_whole(batch_size) or batch_size < 1:  # type: ignore[operator]
        raise ConfigError(f"`batch_size` must be a positive integer, got {batch_size!r:.40}")
    return tuple(int(v) for v in size), ((1, 3) if dynamic_batch else (int(batch_size),))  # type: ignore[return-value]


@contextlib.contextmanager
def input_taken(model: nn.Module, input_size: tuple[int, int, int]) -> Iterator[None]:
    """Around the model's first forward: a RuntimeError there (an input of other channels, one too small) is one
    ConfigError line naming the input the model takes (`describe_input_error`, as `summary` says it); running out of
    memory is let through (the CLI's `export` says so of its --batch-size)."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, torch.OutOfMemoryError) or "allocate" in str(err):
            raise
        said = describe_input_error(model, input_size, err)
        advised = "img_size=" in said  # (lenet5 at 32 px: build it for that size)
        raise ConfigError(f"{said}; {'or ' if advised else ''}give an `input_size` it takes") from err
