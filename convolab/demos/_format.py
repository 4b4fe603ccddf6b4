"""Arrays as the articles print them: nested lists, integers without a decimal point."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _number(value: float, decimals: int) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{decimals}f}"


def nested(array: np.ndarray, decimals: int = 2) -> str:
    """`[[19, 25], [37, 43]]`: integral values as integers, others with `decimals` places."""
    array = np.asarray(array)
    if array.ndim == 0:
        return _number(float(array), decimals)
    return "[" + ", ".join(nested(a, decimals) for a in array) + "]"


def rows(array: np.ndarray, indent: str = "  ", decimals: int = 2) -> Iterator[str]:
    """A 2-D array one row per line, for arrays too wide to read on one line."""
    for row in np.asarray(array):
        yield indent + nested(row, decimals)


def size(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(s) for s in shape)
