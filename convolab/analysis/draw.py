"""Architecture pictures: the dataflow graph of a model, laid out in layers and written as SVG.

The graph comes from `torch.fx.symbolic_trace` (modules deeper than `depth` become one box), the
shapes from running the traced graph once. Layout is the classic layered one: each node goes one
layer below the longest path to it, edges that skip layers pass through invisible waypoints, nodes
in a layer are ordered by the mean position of their inputs, so parallel branches stand side by
side and meet at their join (a concatenation or an addition).
"""
from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import torch
from torch import fx, nn

from .._atomic import atomic_write
from .._paths import writable_output
from ..errors import ConfigError, ConvolabError
from ..models._modes import modes_kept
from ..models._probe import describe_input_error, probe_input
from .counting import one_input_size
from .summary import SIZE_GIVEN, SizeArgs, check_depth, kernels_within, refuse_huge_input, refuse_huge_outputs

JOIN_OPS = frozenset({"cat", "concat", "concatenate", "stack", "add", "add_", "iadd", "sum", "mul", "mul_"})
_SKIPPED_METHODS = frozenset({"size", "dim"})

# drawing constants, in SVG pixels
_CHAR_W, _LINE_H, _PAD = 7.3, 15, 8
_ROW_H, _GAP, _WAYPOINT_W, _MARGIN = 92, 22, 10, 20


@dataclass
class GraphNode:
    """One box of the picture: an fx node that produces a tensor."""

    id: str
    kind: str  # "input", "module", "function", "output"
    op: str  # module type name, or function / method name
    label: str  # module path, or function name
    shape: list[int] | list[list[int]] | None
    inputs: list[str] = field(default_factory=list)
    scope: str = ""  # the module whose forward code calls a function, e.g. "inception3a"
    kernel: str = ""  # a convolution's or pooling's window, stride and padding, e.g. "5x5 pad 2"; those inside a
    # module drawn as one box, "1x1, 3x3 pad 1" (`kernels_within`)

    @property
    def is_join(self) -> bool:
        return self.kind == "function" and self.op in JOIN_OPS and len(self.inputs) > 1


@dataclass
class ArchGraph:
    """Nodes in topological order; edges run from each input to its consumer."""

    name: str
    input_size: tuple[int, ...]
    nodes: list[GraphNode]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(src, node.id) for node in self.nodes for src in node.inputs]


class _DepthTracer(fx.Tracer):
    """fx tracer that keeps any module `depth` levels down as a single call."""

    def __init__(self, depth: int | None):
        super().__init__()
        self.depth = depth

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self.depth is not None and module_qualified_name.count(".") + 1 >= self.depth:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _node_name(node: fx.Node) -> str:
    """A module's dotted name, or the fx name of a function call ("cat_1")."""
    return str(node.target) if node.op == "call_module" else node.name


def _function_name(target: object) -> str:
    if target is operator.add:
        return "add"
    return getattr(target, "__name__", str(target)).lstrip("_")


def _shape_of(value: object) -> list[int] | list[list[int]] | None:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return [list(v.shape) for v in value]
    return None


class _ShapeRecorder(fx.Interpreter):
    """Runs the traced graph once and keeps each node's output shape (fx's ShapeProp prints errors)."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.shapes: dict[str, list[int] | list[list[int]] | None] = {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        self.shapes[n.name] = _shape_of(result)
        return result


def architecture_graph(model: nn.Module, input_size: Sequence[int], depth: int | None = None,
                       given: SizeArgs = SIZE_GIVEN) -> ArchGraph:
    """The eval-mode dataflow graph of `model` at (C, H, W), batch 1, with each node's output shape (`given`:
    which arguments the sizes came from, for the line that refuses one too large, as `summary`)."""
    check_depth(depth)
    input_size = one_input_size(input_size)
    refuse_huge_input(input_size, given)
    name = getattr(model, "model_name", "") or type(model).__name__
    with modes_kept(model):
        model.eval()  # training-only branches (auxiliary heads) are left out of the trace
        tracer = _DepthTracer(depth)
        if getattr(model, "task_classes", None):  # task heads: every output's path (forward() is the main one's)
            tracer.traced_func_name = "forward_outputs"
        try:
            graph = tracer.trace(model)
        except Exception as err:  # fx raises many types for Python control flow it cannot follow
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConvolabError(f"torch.fx cannot trace {name}: {reason}") from err
        gm = fx.GraphModule(tracer.root, graph)
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        recorder = _ShapeRecorder(gm)
        try:
            with torch.no_grad():
                recorder.run(probe_input(model, input_size))
        except RuntimeError as err:
            raise ConfigError(describe_input_error(model, input_size, err)) from err
    if device.type == "meta":  # as summary: on a real device every output has been held, so it fitted
        refuse_huge_outputs(((_node_name(n), recorder.shapes.get(n.name)) for n in graph.nodes
                             if n.op not in ("placeholder", "output")), input_size, given)

    nodes: list[GraphNode] = []
    kept: set[str] = set()
    for node in graph.nodes:
        shape, kernel = recorder.shapes.get(node.name), ""
        if node.op == "call_method" and node.target in _SKIPPED_METHODS:
            continue
        if node.op == "output":
            kind, op, label = "output", "output", "output"
            result = node.args[0]
            shape = recorder.shapes.get(result.name) if isinstance(result, fx.Node) else None
        elif shape is None:
            continue  # scalars and other non-tensor values (x.shape, constants) are not dataflow
        elif node.op == "placeholder":
            kind, op, label = "input", "input", "input"
        elif node.op == "call_module":
            kind, op, label = "module", type(gm.get_submodule(node.target)).__name__, str(node.target)
            kernel = kernels_within(gm.get_submodule(node.target))
        elif node.op == "call_function":
            kind, op = "function", _function_name(node.target)
            label = op
        elif node.op == "call_method":
            kind, op, label = "function", str(node.target), str(node.target)
        else:  # get_attr: a parameter or buffer used directly
            kind, op, label = "function", "get_attr", str(node.target)
        inputs = [n.name for n in node.all_input_nodes if n.name in kept]
        stack = node.meta.get("nn_module_stack") or {}
        scope = next(reversed(stack.values()))[0] if kind == "function" and stack else ""
        nodes.append(GraphNode(node.name, kind, op, label, shape, inputs, scope, kernel))
        kept.add(node.name)
    return ArchGraph(name, tuple(int(v) for v in input_size), nodes)


# ---------------------------------------------------------------------------------------------
# layout


@dataclass
class _Slot:
    """A node or an edge waypoint in one layer of the layout."""

    id: str
    width: float
    height: float
    preds: list[str]
    order_key: int
    x: float = 0.0
    y: float = 0.0


def _shape_text(shape: list[int] | list[list[int]] | None) -> str:
    if shape is None:
        return ""
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape_text(s) for s in shape)  # type: ignore[arg-type]
    return "x".join(map(str, shape[1:])) or "scalar"  # the batch dimension (1) is left out


def _node_lines(node: GraphNode) -> list[str]:
    if node.kind == "module":
        return [node.label, f"{node.op} {node.kernel}".rstrip(), _shape_text(node.shape)]
    if node.scope:
        return [node.label, f"in {node.scope}", _shape_text(node.shape)]
    return [node.label, _shape_text(node.shape)]


def _layout(graph: ArchGraph) -> tuple[dict[str, _Slot], dict[tuple[str, str], list[str]]]:
    """Slots with coordinates for every node and waypoint; the waypoint ids of each edge."""
    index = {node.id: i for i, node in enumerate(graph.nodes)}
    layer: dict[str, int] = {}
    for node in graph.nodes:  # topological order: the longest path from the input
        layer[node.id] = 1 + max((layer[p] for p in node.inputs), default=-1)
    slots: dict[str, _Slot] = {}
    for node in graph.nodes:
        lines = _node_lines(node)
        width = max(len(line) for line in lines) * _CHAR_W + 2 * _PAD
        slots[node.id] = _Slot(node.id, width, len(lines) * _LINE_H + _PAD, [], index[node.id])
    routes: dict[tuple[str, str], list[str]] = {}
    layers: dict[int, list[str]] = {}
    for node in graph.nodes:
        layers.setdefault(layer[node.id], []).append(node.id)
    for src, dst in graph.edges:
        previous, waypoints = src, []
        for lay in range(layer[src] + 1, layer[dst]):
            wid = f"{src}->{dst}@{lay}"
            slots[wid] = _Slot(wid, _WAYPOINT_W, 0, [previous], index[src])
            layers[lay].append(wid)
            waypoints.append(wid)
            previous = wid
        slots[dst].preds.append(previous)
        routes[(src, dst)] = waypoints

    position: dict[str, int] = {}
    for lay in sorted(layers):
        def key(sid: str) -> tuple[float, int]:
            preds = slots[sid].preds
            centre = sum(position[p] for p in preds) / len(preds) if preds else 0.0
            return centre, slots[sid].order_key

        layers[lay].sort(key=key)
        for i, sid in enumerate(layers[lay]):
            position[sid] = i
        # x: as close to the mean x of the inputs as the neighbours allow
        row = [slots[sid] for sid in layers[lay]]
        desired = [sum(slots[p].x for p in s.preds) / len(s.preds) if s.preds else 0.0 for s in row]
        for i, slot in enumerate(row):
            slot.x = desired[i] if i == 0 else max(
                desired[i], row[i - 1].x + (row[i - 1].width + slot.width) / 2 + _GAP)
        shift = sum(d - s.x for d, s in zip(desired, row, strict=True)) / len(row)
        for slot in row:
            slot.x += shift
            slot.y = _MARGIN + lay * _ROW_H
    left = min(s.x - s.width / 2 for s in slots.values())
    for slot in slots.values():
        slot.x += _MARGIN - left
    return slots, routes


def to_svg(graph: ArchGraph) -> str:
    """The graph as a standalone SVG document (no scripts, no external resources)."""
    slots, routes = _layout(graph)
    width = max(s.x + s.width / 2 for s in slots.values()) + _MARGIN
    height = max(s.y + s.height for s in slots.values()) + _MARGIN + 24
    title = f"{graph.name} at {'x'.join(map(str, graph.input_size))}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" '
           'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">',
           f"<title>{escape(title)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
           f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           f'<text x="{_MARGIN}" y="{height - _MARGIN:.0f}" fill="#333">{escape(title)}</text>',
           '<g class="edges" fill="none" stroke="#555" stroke-width="1.3">']
    for (src, dst), waypoints in routes.items():
        a, b = slots[src], slots[dst]
        points = [(a.x, a.y + a.height)] + [(slots[w].x, slots[w].y + _ROW_H / 3) for w in waypoints] + \
            [(b.x, b.y)]
        d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<path class="edge" data-from={quoteattr(src)} data-to={quoteattr(dst)} d="{d}" '
                   'marker-end="url(#arrow)"/>')
    out.append("</g>")
    out.append('<g class="nodes">')
    styles = {"input": ("#e8f0fe", "#3367d6"), "output": ("#e8f0fe", "#3367d6"),
              "module": ("#f7f7f7", "#444"), "function": ("#fff4e0", "#c77700"),
              "join": ("#fde2e1", "#c5221f")}
    for node in graph.nodes:
        slot = slots[node.id]
        style = "join" if node.is_join else node.kind
        fill, stroke = styles[style]
        x0, y0 = slot.x - slot.width / 2, slot.y
        radius = slot.height / 2 if node.kind == "function" else 4
        out.append(f'<g class="node {style}" id={quoteattr(node.id)} data-op={quoteattr(node.op)} '
                   f'data-kind="{node.kind}">')
        out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{slot.width:.1f}" height="{slot.height:.1f}" '
                   f'rx="{radius:.1f}" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{1.8 if node.is_join else 1}"/>')
        for i, line in enumerate(_node_lines(node)):
            weight = ' font-weight="bold"' if i == 0 else ""
            colour = "#222" if i == 0 else "#555"
            out.append(f'<text x="{slot.x:.1f}" y="{y0 + _PAD / 2 + (i + 0.8) * _LINE_H:.1f}" '
                       f'text-anchor="middle" fill="{colour}"{weight}>{escape(line)}</text>')
        out.append("</g>")
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _check_out_path(out: Path) -> None:
    if out.suffix.lower() != ".svg":
        raise ConfigError(f"`out` must name an .svg file, got {str(out)!r}")
    writable_output(out, "`out`", "file", example="model.svg")


def draw(model: nn.Module, input_size: Sequence[int], out: str | os.PathLike, depth: int | None = None,
         given: SizeArgs = SIZE_GIVEN) -> ArchGraph:
    """Write the architecture of `model` as SVG to `out` (atomically); returns the drawn graph."""
    path = Path(out)
    _check_out_path(path)
    graph = architecture_graph(model, input_size, depth, given)
    svg = to_svg(graph)
    try:  # beside `out`, then renamed onto it: a reader never sees half a picture
        atomic_write(path, lambda tmp: Path(tmp).write_text(svg, encoding="utf-8"))
    except ConvolabError:  # a full disk, said in its own line
        raise
    except OSError as err:  # a folder the permission bits allow but the system refuses (/sys, /proc)
        raise ConfigError(f"`out` {path} cannot be written ({err.strerror or err}); choose another file") from None
    return graph
