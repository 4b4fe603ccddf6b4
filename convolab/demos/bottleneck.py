"""Article 004 (Andrew Ng's "Inception network motivation"): a 1x1 bottleneck cuts the cost of a
5x5 convolution on 28x28x192 from 120,422,400 multiplications to 12,443,648, about a tenth.
"""
from __future__ import annotations

from collections.abc import Iterator

from ..analysis.cost import Comparison, LayerCost, compare_designs

INPUT = (192, 28, 28)
DIRECT = "5x5:32"
BOTTLENECK = "1x1:16 5x5:32"


def bottleneck_comparison() -> Comparison:
    """The bottleneck design against the direct 5x5 convolution, on the lecture's input."""
    return compare_designs(INPUT, BOTTLENECK, DIRECT)


def _product(layer: LayerCost) -> str:
    """`28*28*32 * 5*5*192`: output values times the multiplications each needs."""
    c_out, h, w = layer.output_shape
    kh, kw = layer.spec.kernel
    return f"{h}*{w}*{c_out} * {kh}*{kw}*{layer.input_shape[0]}"


def bottleneck_demo() -> Iterator[str]:
    """Each layer's multiplications written out, the totals and the ratio."""
    comparison = bottleneck_comparison()
    c, h, w = INPUT
    yield f"input {h}x{w}x{c} (H x W x C), output 32 channels at {h}x{w} ('same' padding); multiplications:"
    (direct,) = comparison.versus.layers
    yield f"  5x5 convolution, 32 filters:      {_product(direct)} = {direct.multiplications:,}"
    reduce, conv = comparison.design.layers
    yield f"  1x1 bottleneck to 16 channels:    {_product(reduce)} = {reduce.multiplications:,}"
    yield f"  then 5x5 convolution, 32 filters: {_product(conv)} = {conv.multiplications:,}"
    yield f"  with the bottleneck: {reduce.multiplications:,} + {conv.multiplications:,} = " \
          f"{comparison.design.multiplications:,}"
    yield f"{comparison.versus.multiplications:,} vs {comparison.design.multiplications:,}: " \
          f"{comparison.ratio('multiplications'):.2f}x fewer multiplications (about a tenth)"
    yield f"parameters with biases: {comparison.versus.params:,} vs {reduce.params:,} + {conv.params:,} = " \
          f"{comparison.design.params:,} ({comparison.ratio('params'):.2f}x fewer)"
    yield f"(the article writes H x W x C; `convolab cost` takes C x H x W: {c}x{h}x{w}, designs 1x1:16 5x5:32 " \
          "against 5x5:32)"
