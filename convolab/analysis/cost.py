"""The cost of a block design: a chain of convolutions written as `5x5:32`, `1x1:16`, `3x3:64/s2`.

Each layer's multiplications are `H_out*W_out*C_out*C_in*kH*kW` (= its MACs, as `count_macs`
counts them); parameters are the weights, and the weights plus one bias per output channel.
Padding is 'same' unless a layer says `/pP`: the output is `ceil(H/stride)` (for odd kernels
this is PyTorch's padding `(k-1)//2`; even kernels are padded one more on the far side).

It is arithmetic only: nothing is allocated. Yet a design whose input, feature map or weights would
be one tensor above `MAX_TENSOR_BYTES` (16 GiB in float32 at batch 1) could not run on any device,
so it is refused, naming the tensor: the same limit `summary` applies.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..ops.shapes import conv_output_size

DESIGN_FORM = "KxK:CHANNELS[/sS][/pP]"
DESIGN_EXAMPLE = "e.g. 3x3:64/s2, 1x1:16, 1x3:64, 5x5:32/p0"
_PATTERN = re.compile(r"(\d+)x(\d+):(\d+)((?:/[sp]\d+)*)")
MAX_TENSOR_BYTES = 16 * 2**30  # one float32 tensor at batch 1; above it no device could hold the run


def tensor_bytes(*shape: int) -> int:
    """Bytes of a float32 tensor of this shape."""
    return 4 * math.prod(shape)


def gib(n_bytes: int) -> str:
    """`120_000_000_000` -> "112 GiB"; small sizes in MiB."""
    return f"{n_bytes / 2**30:,.0f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:,.1f} MiB"


def too_large(what: str, shape: Sequence[int], advice: str) -> ConfigError | None:
    """A ConfigError naming `what` when a float32 tensor of `shape` exceeds MAX_TENSOR_BYTES, else None."""
    size = tensor_bytes(*shape)
    if size <= MAX_TENSOR_BYTES:
        return None
    return ConfigError(f"{what} would be {gib(size)} in float32, above the {gib(MAX_TENSOR_BYTES)} one tensor "
                       f"may take (nothing was allocated); {advice}")


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of a design: kernel (kH, kW), output channels, stride, padding (None = same)."""

    kernel: tuple[int, int]
    out_channels: int
    stride: int = 1
    padding: int | None = None

    @property
    def text(self) -> str:
        """The layer as a design string, e.g. `3x3:64/s2`; stride 1 and same padding are left out."""
        extra = (f"/s{self.stride}" if self.stride != 1 else "") + \
            (f"/p{self.padding}" if self.padding is not None else "")
        return f"{self.kernel[0]}x{self.kernel[1]}:{self.out_channels}{extra}"


@dataclass(frozen=True)
class LayerCost:
    """A layer applied to a given input: shapes, multiplications and parameters."""

    spec: ConvSpec
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    multiplications: int
    weights: int
    biases: int

    @property
    def params(self) -> int:
        """Weights plus biases (one per output channel)."""
        return self.weights + self.biases

    def to_dict(self) -> dict:
        """The layer for JSON: its design string, input and output (C, H, W), multiplications, weights, params."""
        return {"layer": self.spec.text, "input": list(self.input_shape), "output": list(self.output_shape),
                "multiplications": self.multiplications, "weights": self.weights, "params": self.params}


@dataclass(frozen=True)
class DesignCost:
    """The layers of a design in order, with totals."""

    layers: tuple[LayerCost, ...]

    @property
    def text(self) -> str:
        """The design string, its layers joined by spaces: `1x1:16 5x5:32`."""
        return " ".join(layer.spec.text for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) into the first layer."""
        return self.layers[0].input_shape

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(C, H, W) out of the last layer."""
        return self.layers[-1].output_shape

    @property
    def multiplications(self) -> int:
        """Multiplications (MACs) of all layers, at batch 1."""
        return sum(layer.multiplications for layer in self.layers)

    @property
    def weights(self) -> int:
        """Weights of all layers, biases not counted."""
        return sum(layer.weights for layer in self.layers)

    @property
    def params(self) -> int:
        """Weights plus biases of all layers."""
        return sum(layer.params for layer in self.layers)

    def to_dict(self) -> dict:
        """The design for JSON: its string, input and output (C, H, W), the totals and each layer's `to_dict`."""
        return {"design": self.text, "input": list(self.input_shape), "output": list(self.output_shape),
                "multiplications": self.multiplications, "weights": self.weights, "params": self.params,
                "layers": [layer.to_dict() for layer in self.layers]}


def parse_layer(text: str) -> ConvSpec:
    """`3x3:64/s2/p0` -> ConvSpec((3, 3), 64, stride=2, padding=0)."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"bad design string {text!r}: expected {DESIGN_FORM}, {DESIGN_EXAMPLE}")
    kh, kw, channels = int(match[1]), int(match[2]), int(match[3])
    options: dict[str, int] = {}
    for option in filter(None, match[4].split("/")):
        if option[0] in options:
            raise ConfigError(f"bad design string {text!r}: /{option[0]} given twice; expected {DESIGN_FORM}")
        options[option[0]] = int(option[1:])
    stride = options.get("s", 1)
    if min(kh, kw, channels, stride) < 1:
        raise ConfigError(f"bad design string {text!r}: kernel, channels and stride must be >= 1; "
                          f"expected {DESIGN_FORM}, {DESIGN_EXAMPLE}")
    return ConvSpec((kh, kw), channels, stride, options.get("p"))


def parse_design(layers: str | Sequence[str]) -> list[ConvSpec]:
    """A design as a list of ConvSpecs, from `"1x1:16 5x5:32"` or `["1x1:16", "5x5:32"]`."""
    items = layers.split() if isinstance(layers, str) else [t for item in layers for t in item.split()]
    if not items:
        raise ConfigError(f"empty design: give at least one layer as {DESIGN_FORM}, {DESIGN_EXAMPLE}")
    return [parse_layer(item) for item in items]


def _output_side(n: int, k: int, spec: ConvSpec) -> int:
    if spec.padding is None:
        return math.ceil(n / spec.stride)
    try:
        return conv_output_size(n, k, padding=spec.padding, stride=spec.stride)  # type: ignore[return-value]
    except ConfigError as err:
        raise ConfigError(f"layer {spec.text} does not fit its {n}-pixel input: {err}") from None


def _specs(design: str | Sequence[str] | Sequence[ConvSpec]) -> list[ConvSpec]:
    """The layers of a design given as a string, or a list of layer strings and ConvSpecs (mixed, too)."""
    if isinstance(design, str):
        return parse_design(design)
    specs: list[ConvSpec] = []
    for item in design:
        if isinstance(item, str):
            specs += parse_design(item)
        elif isinstance(item, ConvSpec):
            specs.append(item)
        else:
            raise ConfigError(f"bad design layer {item!r}: give a layer as {DESIGN_FORM} or a ConvSpec, "
                              f"{DESIGN_EXAMPLE}")
    if not specs:
        raise ConfigError(f"empty design: give at least one layer as {DESIGN_FORM}, {DESIGN_EXAMPLE}")
    return specs


def design_cost(input_shape: Sequence[int], design: str | Sequence[str] | Sequence[ConvSpec]) -> DesignCost:
    """Per-layer shapes, multiplications and parameters of a design on a (C, H, W) input."""
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input must be C, H, W with positive integers, got {tuple(input_shape)}")
    specs = _specs(design)
    c, h, w = (int(v) for v in input_shape)
    error = too_large(f"the input {c}x{h}x{w} at batch 1", (c, h, w), "give a smaller `input_shape`")
    if error is not None:
        raise error
    layers = []
    for spec in specs:
        kh, kw = spec.kernel
        out = (spec.out_channels, _output_side(h, kh, spec), _output_side(w, kw, spec))
        weights = spec.out_channels * c * kh * kw
        error = (too_large(f"layer {spec.text}'s weight tensor {spec.out_channels}x{c}x{kh}x{kw}",
                           (spec.out_channels, c, kh, kw), "use a smaller kernel or fewer channels")
                 or too_large(f"layer {spec.text}'s output {_shape(out)} at batch 1", out,
                              "give a smaller `input_shape`, fewer channels or a larger stride"))
        if error is not None:
            raise error
        layers.append(LayerCost(spec, (c, h, w), out, out[0] * out[1] * out[2] * c * kh * kw,
                                weights, spec.out_channels))
        c, h, w = out
    return DesignCost(tuple(layers))


@dataclass(frozen=True)
class Comparison:
    """A design against a baseline on the same input: ratios > 1 mean the design is cheaper."""

    design: DesignCost
    versus: DesignCost

    def ratio(self, quantity: str) -> float:
        return getattr(self.versus, quantity) / getattr(self.design, quantity)

    def saved(self, quantity: str) -> float:
        return 1 - getattr(self.design, quantity) / getattr(self.versus, quantity)

    def to_dict(self) -> dict:
        return {q: {"ratio": self.ratio(q), "saved": self.saved(q)}
                for q in ("multiplications", "weights", "params")}


def compare_designs(input_shape: Sequence[int], design: str | Sequence[str],
                    versus: str | Sequence[str]) -> Comparison:
    """Cost of `design` against `versus` on the same input."""
    return Comparison(design_cost(input_shape, design), design_cost(input_shape, versus))


def _sum_line(values: Sequence[int]) -> str:
    total = f"{sum(values):,}"
    return total if len(values) == 1 else " + ".join(f"{v:,}" for v in values) + f" = {total}"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def format_design(cost: DesignCost, title: str = "design") -> str:
    """A design as a small table of its layers and the sums of multiplications and parameters."""
    header = ("layer", "input", "output", "multiplications", "weights", "params")
    body = [(layer.spec.text, _shape(layer.input_shape), _shape(layer.output_shape),
             f"{layer.multiplications:,}", f"{layer.weights:,}", f"{layer.params:,}")
            for layer in cost.layers]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [f"{title} {cost.text} on {_shape(cost.input_shape)}"]
    for row in [header, *body]:
        lines.append("  " + "  ".join(f"{v:<{widths[i]}}" if i < 3 else f"{v:>{widths[i]}}"
                                      for i, v in enumerate(row)))
    lines.append(f"  multiplications: {_sum_line([layer.multiplications for layer in cost.layers])}")
    lines.append(f"  weights: {_sum_line([layer.weights for layer in cost.layers])}")
    lines.append(f"  params with biases: {_sum_line([layer.params for layer in cost.layers])}")
    return "\n".join(lines)


def format_comparison(comparison: Comparison) -> str:
    """Both designs, then each quantity side by side with the ratio and the share saved."""
    lines = [format_design(comparison.design), format_design(comparison.versus, "versus"),
             f"{comparison.design.text} against {comparison.versus.text}:"]
    ours, theirs = comparison.design.output_shape, comparison.versus.output_shape
    if tuple(ours) != tuple(theirs):  # ("80% saved" misleads between designs of different outputs)
        lines.append(f"  (their outputs differ, {_shape(ours)} against {_shape(theirs)}: the designs do not do the "
                     "same job, and the figures below compare their costs alone)")
    for quantity, label in (("multiplications", "multiplications"), ("weights", "weights"),
                            ("params", "params with biases")):
        ours, theirs = getattr(comparison.design, quantity), getattr(comparison.versus, quantity)
        ratio, saved = comparison.ratio(quantity), comparison.saved(quantity)
        verdict = (f"{ratio:.2f}x fewer, {saved:.0%} saved" if ratio >= 1  # (and the other way round, as the
                   else f"{1 / ratio:.2f}x more, {-saved:.0%} added; {comparison.versus.text} saves "  # articles put
                   f"{1 - ratio:.0%}")  # it: "two 3x3 instead of one 5x5 saves 28%")
        lines.append(f"  {label}: {ours:,} vs {theirs:,}: {verdict}")
    return "\n".join(lines)
