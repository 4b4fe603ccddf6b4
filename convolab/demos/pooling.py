"""Article 001's pooling: max pooling of arange(16) as a 4x4 image, with the stride defaulting to
the window, then with padding and stride, average pooling, and several channels.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..ops import pool2d
from ._format import nested, rows

Size = int | tuple[int, int]


@dataclass
class PoolExample:
    """One pooling call of the article (or its PyTorch form), as `pool2d` arguments."""

    text: str
    window: Size
    stride: Size | None = None
    padding: Size = 0
    mode: str = "max"
    torch_accepts: bool = True  # PyTorch refuses padding above half the window


POOL_EXAMPLES = (
    PoolExample("max pool 3x3 (stride defaults to the window)", 3),
    PoolExample("max pool 3x3, padding 1, stride 2", 3, 2, 1),
    PoolExample("max pool (2, 3), padding (1, 2), stride (2, 3) (the article's MXNet call)",
                (2, 3), (2, 3), (1, 2), torch_accepts=False),
    PoolExample("avg pool 3x3, padding 1, stride 2 (the padding counts as zeros)", 3, 2, 1, "avg"),
)


def torch_pool(x: np.ndarray, ex: PoolExample) -> np.ndarray:
    """The same pooling by torch.nn.functional, for the side-by-side check; a padding PyTorch's pooling refuses
    (above half the window) is added by F.pad first, of -inf for max pooling (a padded cell is never the max)."""
    fn = F.max_pool2d if ex.mode == "max" else F.avg_pool2d
    stride = ex.window if ex.stride is None else ex.stride
    t = torch.from_numpy(x)
    if ex.torch_accepts:
        return fn(t, ex.window, stride, ex.padding).numpy()
    return fn(F.pad(t, explicit_padding(ex), value=-np.inf if ex.mode == "max" else 0.0), ex.window, stride).numpy()


def explicit_padding(ex: PoolExample) -> tuple[int, int, int, int]:
    """The example's padding as F.pad takes it: (left, right, top, bottom)."""
    ph, pw = (ex.padding, ex.padding) if isinstance(ex.padding, int) else ex.padding
    return pw, pw, ph, ph


def pooling_demo() -> Iterator[str]:
    """Each example by convolab.ops.pool2d, beside PyTorch's result where PyTorch accepts the call."""
    X = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    yield "X = arange(16) as a 1x1x4x4 image:"
    yield from rows(X[0, 0])
    for ex in POOL_EXAMPLES:
        ours = pool2d(X, ex.window, ex.stride, ex.padding, ex.mode)
        yield f"{ex.text}:"
        yield f"  pool2d: {nested(ours[0, 0])}"
        if ex.torch_accepts:
            yield f"  PyTorch: {nested(torch_pool(X, ex)[0, 0])}"
        else:  # (nn.MaxPool2d refuses the call: padding may be at most half the window)
            yield (f"  PyTorch: {nested(torch_pool(X, ex)[0, 0])} (F.max_pool2d(F.pad(X, {explicit_padding(ex)}, "
                   f"value=-inf), {ex.window}, {ex.stride}): its pooling refuses a padding above half the window)")
    X2 = np.concatenate([X, X + 1], axis=1)
    yield "two channels, X and X + 1 (1x2x4x4): pooling keeps the channels apart"
    ex = POOL_EXAMPLES[1]
    ours = pool2d(X2, ex.window, ex.stride, ex.padding)
    yield f"{ex.text}:"
    yield f"  pool2d: {nested(ours[0])} (shape {list(ours.shape)})"
    yield f"  PyTorch: {nested(torch_pool(X2, ex)[0])}"
