"""An option's bounds, an interval written as "[0, 1)" or "(0, inf)" (a TrainConfig field's): read, and said."""
from __future__ import annotations

import math


def interval(bounds: str) -> tuple[bool, float, float, bool]:
    """(closed below, low, high, closed above) of an interval such as "[0, 1)" or "(0, inf)"."""
    low, high = bounds[1:-1].split(",")
    return bounds[0] == "[", float(low), float(high), bounds[-1] == "]"


def bounds_phrase(kind: type, bounds: str) -> str:
    """What a value of the type `kind` (int or float) within `bounds` must be: "must be a positive integer"."""
    closed_low, low, high, closed_high = interval(bounds)
    noun = "an integer" if kind is int else "a number"
    if math.isinf(high):
        if kind is int and low == 1 or kind is float and low == 0 and not closed_low:
            return f"must be a positive {'integer' if kind is int else 'number'}"
        return f"must be {noun} >= {low:g}" if closed_low else f"must be {noun} > {low:g}"
    if kind is int:
        return f"must be {noun} in {bounds[0]}{low:.0f}, {high:.0f}{bounds[-1]}"
    return f"must be {noun} in {bounds[0]}{low:g}, {high:g}{bounds[-1]}"
