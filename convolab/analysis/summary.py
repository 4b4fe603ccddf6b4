"""A per-layer summary in the manner of torchinfo: output shape, parameters, MACs and kernel of each module.

One eval-mode forward pass at batch 1 is watched with hooks. An input that would be one float32
tensor above `cost.MAX_TENSOR_BYTES` (16 GiB) is refused before the pass; on the meta device (as
the CLI builds models: nothing is allocated) so is any module's output after it. Rows follow the
order in which the modules are called; a module called twice gets two rows. MACs are those of `count_macs`
(Conv2d + Linear only, `layer_macs`); everything else that ran is named as not counted, and modules
that never ran (an auxiliary head in eval mode) are listed rather than silently counted.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models._probe import probe_forward
from .cost import too_large
from .counting import check_module, count_params, is_whole, layer_macs, one_input_size

COUNTED_TYPES = (nn.Conv2d, nn.Linear)


@dataclass
class LayerRow:
    """One call of one module: its output shape, the parameters it owns and the MACs of the call."""

    name: str
    type: str
    depth: int
    output_shape: Any  # list[int] for a tensor, a list of those for a tuple of tensors, None otherwise
    params: int
    macs: int
    kernel: str = ""  # a convolution's or pooling's window, stride, padding (`kernel_text`); "" for other modules;
    # a row at `depth` that stands for the layers inside it: their windows, where there are a few (`kernels_within`)

    def to_dict(self) -> dict:
        """The row's fields as a dict, for JSON."""
        return asdict(self)


@dataclass
class ModuleInfo:
    """A module named in the footer: its dotted name, type and parameter count."""

    name: str
    type: str
    params: int

    def to_dict(self) -> dict:
        """The module's name, type and parameter count as a dict, for JSON."""
        return asdict(self)


@dataclass
class Summary:
    """Rows, totals, modules that did not run and the module types whose cost is not counted."""

    model: str
    input_size: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    total_macs: int
    not_run: list[ModuleInfo] = field(default_factory=list)
    not_counted: list[str] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """2 x `total_macs`: one multiply and one add per MAC."""
        return 2 * self.total_macs

    def to_dict(self) -> dict:
        """The summary for JSON (`summary --json`): totals, FLOPs, what was counted, and every row."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "flops": self.flops,
            "macs_counted": "Conv2d + Linear multiply-accumulates, batch 1; FLOPs = 2 x MACs",
            "layers": [r.to_dict() for r in self.rows],
            "not_run": [m.to_dict() for m in self.not_run],
            "not_counted": list(self.not_counted),
        }

    def __repr__(self) -> str:  # (in a REPL or notebook: the table, as torchinfo shows its summary, not 1,500 chars)
        return self.to_table()

    __str__ = __repr__

    def to_table(self) -> str:
        """The summary as a fixed-width text table with a footer stating what was counted."""
        header = ("Layer (name: type)", "Output shape", "Params", "MACs", "Kernel")
        body = [("  " * (r.depth - 1) + f"{r.name}: {r.type}", _format_shape(r.output_shape),
                 f"{r.params:,}" if r.params else "--", f"{r.macs:,}" if r.macs else "--", r.kernel)
                for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(5)]
        widths[0] = max(widths[0], 34)

        def fmt(line: Sequence[str]) -> str:
            return (f"{line[0]:<{widths[0]}}  {line[1]:<{widths[1]}}  "
                    f"{line[2]:>{widths[2]}}  {line[3]:>{widths[3]}}  {line[4]}").rstrip()

        rule = "=" * max(len(fmt(line)) for line in [header, *body])
        lines = [f"{self.model} at input {'x'.join(map(str, self.input_size))} (batch 1, eval mode)",
                 rule, fmt(header), rule, *(fmt(b) for b in body), rule,
                 f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                 f"Total MACs: {self.total_macs:,} (Conv2d + Linear multiply-accumulates)",
                 f"FLOPs: {self.flops:,} (= 2 x MACs; the \"FLOPs\" of ResNet's paper and many others are "
                 "multiply-adds: compare them with Total MACs)"]
        counted = f"{', '.join(self.not_counted)} modules" if self.not_counted else "no module"
        lines.append(f"Not counted: {counted}; functional ops in forward code "
                     "(activations, pooling, adds, concatenations: no row of their own)")
        if self.not_run:
            names = ", ".join(f"{m.name} ({m.type}, {m.params:,} params)" for m in self.not_run)
            lines.append(f"Did not run: {names}; their params are in the totals, their MACs are not")
        else:
            lines.append("Did not run: none")
        lines.append(rule)
        return "\n".join(lines)


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "--"
    if shape and isinstance(shape[0], list):
        return ", ".join(_format_shape(s) for s in shape)
    return "[" + ", ".join(map(str, shape)) + "]"


def _output_shape(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return list(output.shape)
    if isinstance(output, (tuple, list)) and output and all(isinstance(o, torch.Tensor) for o in output):
        return [list(o.shape) for o in output]
    if isinstance(output, dict) and output and all(isinstance(o, torch.Tensor) for o in output.values()):
        return [list(o.shape) for o in output.values()]
    return None


def _size_text(value: Any) -> str:
    """3 -> "3"; (1, 7) -> "1x7"; (3, 3) -> "3"."""
    if isinstance(value, (tuple, list)):
        return str(value[0]) if len(set(value)) == 1 else "x".join(map(str, value))
    return str(value)


def kernel_text(module: nn.Module) -> str:
    """A convolution's or pooling's window and what it is other than 1 or 0: "5x5 pad 2", "3x3 stride 2 pad 1",
    "1x7 pad 0x3", "3x3 groups 32"; an adaptive pooling's output ("to 1x1"); "" for any other module."""
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = module.output_size
        size = (size, size) if isinstance(size, int) or size is None else size
        return "to " + "x".join("input" if v is None else str(v) for v in size)
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return ""
    k = module.kernel_size
    k = (k, k) if isinstance(k, int) else k
    text = "x".join(map(str, k))
    stride, padding = _size_text(module.stride), _size_text(module.padding)
    dilation = _size_text(getattr(module, "dilation", 1))  # (average pooling has none)
    text += f" stride {stride}" if stride != "1" else ""
    text += f" pad {padding}" if padding != "0" else ""
    text += f" dilation {dilation}" if dilation != "1" else ""
    text += f" groups {module.groups}" if getattr(module, "groups", 1) != 1 else ""
    return text + (" ceil" if getattr(module, "ceil_mode", False) else "")


BOX_KERNELS = 3  # the most windows a module drawn as one box lists (a deeper stack is drawn without them)


def kernels_within(module: nn.Module, most: int = BOX_KERNELS) -> str:
    """`kernel_text` of a module, or for a module made of others (a conv-norm-activation, an Inception branch
    drawn as one box) the windows inside it in order, "1x1, 3x3 pad 1", where there are `most` or fewer."""
    if text := kernel_text(module):
        return text
    inside = [text for m in module.modules() if (text := kernel_text(m))]
    return ", ".join(inside) if len(inside) <= most else ""


def _owned_params(model: nn.Module) -> dict[str, int]:
    """Parameters each module owns directly, a tensor shared by several modules going to the first."""
    seen: set[int] = set()
    owned: dict[str, int] = {}
    for name, module in model.named_modules():
        total = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        owned[name] = total
    return owned


def _depth(name: str) -> int:
    """0 for the model itself, 1 for its children, and so on."""
    return name.count(".") + 1 if name else 0


def _prefixes(name: str) -> list[str]:
    """The module and all its ancestors: "a.b" -> ["a.b", "a", ""]."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def resolve_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, ...]:
    """`input_size` if given (checked: `one_input_size`), else the model's `data_config.input_size`."""
    if input_size is not None:
        return one_input_size(input_size)
    config = getattr(model, "data_config", None)
    if config is None:
        name = getattr(model, "model_name", "") or type(model).__name__
        raise ConfigError(f"{name} has no default input size; give `input_size` C,H,W")
    return tuple(config.input_size)


def check_depth(depth: object) -> None:
    """A depth of rows to keep is None (all) or a whole number >= 1: else one ConfigError line (1.5 and True were
    taken before, "2" a TypeError about `<`)."""
    if depth is not None and not (is_whole(depth) and depth >= 1):  # type: ignore[operator]
        raise ConfigError(f"depth must be a whole number >= 1 (1 = the model's children), got {depth!r}")


@dataclass(frozen=True)
class SizeArgs:
    """Where the sizes of a summary or drawing came from, so that a tensor refused as too large names the
    argument to change: `input_size` True when the input size was given (--input-size; the default, as a
    size passed from Python is), False when it is the model's own (or its weights'); `in_chans`,
    `num_classes` and `img_size` as given to create_model (--in-chans, --num-classes, --model-option
    img_size=N), None when left out."""

    input_size: bool = True
    in_chans: int | None = None
    num_classes: int | None = None
    img_size: int | None = None

    def model_size(self, input_size: Sequence[int]) -> tuple[str, str]:
        """How to name the model's own input size, and what to change to make it smaller: its img_size where
        one was given and made it, else --input-size."""
        size = ",".join(map(str, input_size))
        if self.img_size is not None and not self.input_size and tuple(input_size[1:]) == (self.img_size,) * 2:
            return f"img_size={self.img_size} (input {size})", "give a smaller img_size (`model_options` img_size=N)"
        return f"the model's input size {size}", "give a smaller `input_size`"


SIZE_GIVEN = SizeArgs()  # a size passed in, as from Python


def refuse_huge_input(input_size: Sequence[int], given: SizeArgs = SIZE_GIVEN) -> None:
    """ConfigError when the input itself (batch 1, float32) would exceed the one-tensor limit of
    `cost.MAX_TENSOR_BYTES`: what summary, draw and cost refuse alike, before any work."""
    size = ",".join(map(str, input_size))
    if given.input_size:
        what, advice = f"`input_size` {size}: the input at batch 1", "give a smaller `input_size`"
    elif given.in_chans is not None and given.in_chans == input_size[0]:  # the model's size, with these channels
        what = f"`in_chans` {given.in_chans}: the input {'x'.join(map(str, input_size))} at batch 1"
        advice = "give a smaller `in_chans`"
    else:
        named, advice = given.model_size(input_size)
        what = f"{named}: the input at batch 1"
    error = too_large(what, (1, *input_size), advice)
    if error is not None:
        raise error


def refuse_huge_outputs(outputs: Iterable[tuple[str, Any]], input_size: Sequence[int],
                        given: SizeArgs = SIZE_GIVEN) -> None:
    """ConfigError naming the first of (name, output shape) whose tensor alone would exceed the one-tensor
    limit (a shape is a list of ints, a list of those for several tensors, or None), and the argument that
    made it so: --num-classes for a classifier's output (batch, classes) of the classes given, else the
    input size."""
    size = ",".join(map(str, input_size))
    named, size_advice = (f"`input_size` {size}", "give a smaller `input_size`") if given.input_size \
        else given.model_size(input_size)
    for name, output_shape in outputs:
        shapes = output_shape if output_shape and isinstance(output_shape[0], list) else [output_shape]
        for shape in filter(None, shapes):
            output = f"{name or 'the model'}'s output {'x'.join(map(str, shape))}"
            if given.num_classes is not None and len(shape) == 2 and shape[1] == given.num_classes:
                what, advice = f"`num_classes` {given.num_classes}: {output}", "give a smaller `num_classes`"
            else:
                what, advice = f"at {named}, {output}", size_advice
            error = too_large(what, shape, advice)
            if error is not None:
                raise error


def _with_uncalled_containers(rows: list[LayerRow], modules: dict[str, nn.Module], called: set[str], ran: set[str],
                              subtree_params: dict[str, int]) -> list[LayerRow]:
    """`rows` with a row for each module whose forward never ran while modules inside it did (a two-head
    model calls its backbone's parts, not the backbone): its parameters and the MACs of what ran inside it,
    before its first part, so that the rows of one depth add up to the totals. Module lists and dicts, which
    are never called, keep their parts' rows alone. A module called once whose part runs outside its forward
    (LeNet's head.fc, called after head) counts that part's MACs too, as its parameters count it."""
    inside: Counter[str] = Counter()  # the MACs of the counted calls inside each module, and where its rows start
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        counted = isinstance(modules[row.name], COUNTED_TYPES)
        for prefix in _prefixes(row.name)[1:]:
            inside[prefix] += row.macs if counted else 0
            first.setdefault(prefix, i)
    calls = Counter(r.name for r in rows)
    for row in rows:
        if calls[row.name] == 1 and row.name in first:
            row.macs = inside[row.name]
    uncalled = [n for n in ran - called - {""} if not isinstance(modules[n], (nn.ModuleList, nn.ModuleDict))]
    for name in sorted(uncalled, key=lambda n: (first[n], _depth(n)), reverse=True):  # (from the last: no shifts)
        rows.insert(first[name], LayerRow(name, type(modules[name]).__name__, _depth(name), None,
                                          subtree_params[name], inside[name]))
    return rows


@torch.no_grad()
def summary(model: nn.Module, input_size: Sequence[int], depth: int | None = None,
            given: SizeArgs = SIZE_GIVEN) -> Summary:
    """Per-module output shapes, parameters and MACs of one eval forward at (C, H, W), batch 1 (every task head
    of a model of several tasks included; auxiliary heads, which run in training only, are not).

    `depth` keeps rows of modules nested at most that deep (1 = the model's children); totals
    always cover the whole model. A model built under `torch.device("meta")` is summarized from
    shapes alone. `given` says which arguments the sizes came from, for the line that refuses one too large.
    """
    check_module(model)
    input_size = one_input_size(input_size)
    check_depth(depth)
    refuse_huge_input(input_size, given)
    owned = _owned_params(model)
    modules = dict(model.named_modules())
    names = {id(m): n for n, m in modules.items()}
    subtree_params = dict.fromkeys(modules, 0)
    for name, count in owned.items():
        for prefix in _prefixes(name):
            subtree_params[prefix] += count
    rows: list[LayerRow] = []
    stack: list[LayerRow] = []  # rows of the calls now open, innermost last
    called: set[str] = set()
    total_macs = 0

    def pre_hook(module: nn.Module, _inputs) -> None:
        name = names[id(module)]
        first_call = name not in called
        called.add(name)
        row = LayerRow(name, type(module).__name__, _depth(name), None,
                       subtree_params[name] if first_call else 0, 0, kernel_text(module))
        rows.append(row)
        stack.append(row)

    def post_hook(module: nn.Module, _inputs, output) -> None:
        nonlocal total_macs
        row = stack.pop()
        row.output_shape = _output_shape(output)
        if isinstance(module, COUNTED_TYPES):
            macs = layer_macs(module, output)
            total_macs += macs
            row.macs += macs
            for open_row in stack:  # each enclosing call's MACs include those of its children
                open_row.macs += macs

    handles = []
    for module in modules.values():
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(post_hook))
    try:
        probe_forward(model, input_size)
    finally:
        for h in handles:
            h.remove()

    param = next(model.parameters(), None)
    if param is not None and param.device.type == "meta":  # on a real device the pass held every output: it fitted
        refuse_huge_outputs(((r.name, r.output_shape) for r in rows), input_size, given)
    # a module "ran" when it or anything inside it was called (a ModuleList is never called itself)
    ran = {prefix for name in called for prefix in _prefixes(name)}
    not_run = [ModuleInfo(n, type(m).__name__, subtree_params[n]) for n, m in modules.items()
               if n not in ran and n.rpartition(".")[0] in ran]
    not_counted = sorted({type(modules[n]).__name__ for n in called
                          if not list(modules[n].children()) and not isinstance(modules[n], COUNTED_TYPES)})
    rows = _with_uncalled_containers(rows, modules, called, ran, subtree_params)
    rows = [r for r in rows if r.depth >= 1 and (depth is None or r.depth <= depth)]
    for row in rows:  # a row that stands for the layers below `depth`: their windows, where a few
        if row.depth == depth and not row.kernel:
            row.kernel = kernels_within(modules[row.name])
    return Summary(
        model=getattr(model, "model_name", "") or type(model).__name__,
        input_size=input_size,
        rows=rows,
        total_params=count_params(model),
        trainable_params=count_params(model, trainable_only=True),
        total_macs=total_macs,
        not_run=not_run,
        not_counted=not_counted,
    )
