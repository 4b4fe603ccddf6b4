"""Article 001 (MXNet convolution basics) as runnable examples: cross-correlation from scratch,
a 1x2 edge kernel learned from data, and the output shapes of padding and stride.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..analysis.summary import summary
from ..models import create_model
from ..ops import conv1x1_as_matmul, conv2d, conv_output_size, corr2d
from ._format import nested, rows, size

CORR2D_X = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
CORR2D_K = np.array([[0, 1], [2, 3]])
# The two-channel figure of the article's "channels" part (its picture is lost; these are its numbers).
MULTI_X = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
MULTI_K = np.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
EDGE_K = np.array([[1, -1]])


def corr2d_demo() -> Iterator[str]:
    """The article's 3x3 example, a layer as correlation plus bias, and the two-channel sum."""
    yield "X ="
    yield from rows(CORR2D_X)
    yield f"K = {nested(CORR2D_K)}"
    yield f"corr2d(X, K) = {nested(corr2d(CORR2D_X, CORR2D_K))}"
    y = conv2d(CORR2D_X[None, None].astype(float), CORR2D_K[None, None].astype(float), bias=np.array([1.0]))
    yield f"a convolution layer is cross-correlation plus a bias: conv2d(X, K, bias=1) = {nested(y[0, 0])}"
    yield ""
    yield "two input channels: one kernel per channel, the correlations summed"
    for c in range(2):
        yield f"  channel {c}: X = {nested(MULTI_X[c])}, K = {nested(MULTI_K[c])}, " \
              f"corr2d = {nested(corr2d(MULTI_X[c], MULTI_K[c]))}"
    yield f"  conv2d (1 x 2 x 2 x 2 kernel) = {nested(conv2d(MULTI_X[None], MULTI_K[None])[0, 0])}"
    yield ""
    x = np.arange(27, dtype=np.float64).reshape(1, 3, 3, 3)
    weight = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    y = conv1x1_as_matmul(x, weight)
    same = np.allclose(y, conv2d(x, weight[:, :, None, None]))
    yield "a 1x1 convolution is a fully connected layer at every pixel: (2 x 3 weight) @ (3 channels x 9 px)"
    yield f"  X = arange(27) as 3 channels of 3x3 (X0 = {nested(x[0, 0])}, X1 = X0 + 9, X2 = X0 + 18)"
    yield f"  weight = {nested(weight)} (row 0: X0 - X2; row 1: half the channels' sum)"
    yield f"  equals conv2d with a 2x3x1x1 kernel: {same}; output channel 0 = X0 - X2 = {nested(y[0, 0])}"


@dataclass
class EdgeKernelRun:
    """The image, its edge map, the loss every other step and the kernel learned."""

    image: np.ndarray
    edges: np.ndarray
    losses: list[tuple[int, float]]
    kernel: np.ndarray


def edge_image() -> np.ndarray:
    """6 x 8 ones with a band of zeros in columns 2 to 5."""
    X = np.ones((6, 8))
    X[:, 2:6] = 0
    return X


def learn_edge_kernel(steps: int = 10, lr: float = 3e-2, seed: int = 0) -> EdgeKernelRun:
    """Learn the 1x2 kernel that maps the image to its edge map, by the article's loop.

    The article's loss `(Y_hat - Y) ** 2` is back-propagated as an array, which MXNet sums: the
    gradient is that of the sum of squares. Its bias is left out of the update; here the layer has
    none. The article prints the loss of step i when i is odd, before that step's update.
    """
    X = edge_image()
    Y = corr2d(X, EDGE_K)
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False).double()
    x = torch.from_numpy(X).reshape(1, 1, 6, 8)
    y = torch.from_numpy(Y).reshape(1, 1, 6, 7)
    losses = []
    for i in range(steps):
        loss = (conv(x) - y) ** 2
        conv.zero_grad()
        loss.sum().backward()
        if i % 2 == 1:
            losses.append((i, loss.sum().item()))
        with torch.no_grad():
            conv.weight -= lr * conv.weight.grad
    return EdgeKernelRun(X, Y, losses, conv.weight.detach().reshape(1, 2).numpy())


def edge_kernel_demo(steps: int = 10, seed: int = 0) -> Iterator[str]:
    """The 6x8 image, its edge map and the kernel learned back from the pair; last line: the kernel."""
    run = learn_edge_kernel(steps=steps, seed=seed)
    yield f"X ({size(run.image.shape)}): ones with a band of zeros in columns 2-5"
    yield from rows(run.image)
    yield f"Y = corr2d(X, {nested(EDGE_K)}) ({size(run.edges.shape)}): 1 where white turns black, -1 back"
    yield from rows(run.edges)
    yield f"learning a 1x2 kernel from X and Y: nn.Conv2d(1, 1, (1, 2), bias=False), lr 3e-2, " \
          f"{steps} steps, sum of squared errors"
    for i, loss in run.losses:
        yield f"batch {i}, loss {loss:.3f}"
    yield f"learned kernel: {nested(np.round(run.kernel, 2))}"


@dataclass
class ShapeExample:
    """One of the article's padding/stride examples, computed by the formula and by nn.Conv2d."""

    text: str
    kernel: int | tuple[int, int]
    padding: int | tuple[int, int] = 0
    stride: int | tuple[int, int] = 1


SHAPE_EXAMPLES = (
    ShapeExample("8x8, kernel 3, padding 1", 3, 1),
    ShapeExample("8x8, kernel (5, 3), padding (2, 1)", (5, 3), (2, 1)),
    ShapeExample("8x8, kernel 3, padding 1, stride 2", 3, 1, 2),
    ShapeExample("8x8, kernel (3, 5), padding (0, 1), stride (3, 4)", (3, 5), (0, 1), (3, 4)),
)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


def working(ex: ShapeExample, n: int = 8) -> str:
    """The formula worked through for the height and the width of an `n` x `n` input."""
    sides = []
    for axis, k, p, s in zip("HW", _pair(ex.kernel), _pair(ex.padding), _pair(ex.stride)):
        sides.append(f"{axis}: floor(({n} + 2*{p} - {k}) / {s}) + 1 = {conv_output_size(n, k, p, s)}")
    return "; ".join(sides)


def shape_rows() -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """(example, output by the formula, output of a real nn.Conv2d) for each article example."""
    out = []
    x = torch.rand(1, 1, 8, 8)
    for ex in SHAPE_EXAMPLES:
        formula = conv_output_size((8, 8), ex.kernel, ex.padding, ex.stride)
        conv = nn.Conv2d(1, 1, ex.kernel, padding=ex.padding, stride=ex.stride)
        with torch.no_grad():
            real = tuple(conv(x).shape[2:])
        out.append((ex.text, tuple(formula), real))
    return out


def lenet_shapes(input_size: tuple[int, int, int] = (1, 28, 28)) -> list[tuple[str, list[int]]]:
    """(layer type, output shape) of every layer of the article's LeNet-5 on one image."""
    model = create_model("lenet5")
    table = summary(model, input_size)
    leaves = [r for r in table.rows if not any(model.get_submodule(r.name).children())]
    return [(r.type, r.output_shape) for r in leaves]


def shapes_demo() -> Iterator[str]:
    """Padding and stride examples (formula and nn.Conv2d) and the LeNet-5 shape table."""
    yield "output size per side: floor((n + 2p - k) / s) + 1 (p: padding on each side; the article " \
          "writes n - k + p_total + s over s)"
    width = max(len(text) for text, _, _ in shape_rows())
    for ex, (text, formula, real) in zip(SHAPE_EXAMPLES, shape_rows()):
        yield f"  {text:<{width}}  -> {size(formula)}   nn.Conv2d: {size(real)}"
        yield f"      {working(ex)}"
    yield ""
    yield "LeNet-5 (lenet5) on a 1x1x28x28 image, each layer's output shape:"
    table = lenet_shapes()
    width = max(len(kind) for kind, _ in table)
    for kind, shape in table:
        yield f"  {kind:<{width}}  output shape: {shape}"
