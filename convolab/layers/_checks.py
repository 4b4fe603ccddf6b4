"""Argument checks shared by the blocks: a width below 1 is refused where the block is built, naming it,
rather than by PyTorch's first forward (a 0-channel convolution builds, and fails only when it runs)."""
from __future__ import annotations

from typing import Any


def check_channels(block: str, **counts: Any) -> None:
    """A ValueError naming the first of `counts` (argument name -> channel count) below 1."""
    for name, count in counts.items():
        if count < 1:
            raise ValueError(f"{block}: {name} must be >= 1 channel, got {count}")
