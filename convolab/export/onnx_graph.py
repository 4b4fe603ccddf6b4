"""The ONNX graph of a model, written by either of torch's ONNX exporters:

- "torchscript" (the default): `torch.onnx.export(..., dynamo=False)`, which traces the model with TorchScript.
  PyTorch has deprecated it, but it still ships, and it is 4 to 25 times faster on these nets (a checked export of
  lenet5 0.13 s against 2.8 s, googlenet 0.9 s against 3.8 s: the README's table, torch 2.14).
- "dynamo": `torch.onnx.export(..., dynamo=True)`, which captures the model with `torch.export` and translates
  it with onnxscript: PyTorch's default since torch 2.9 and the exporter that stays when the other goes.

Both files are read the same way (input `input`, output `logits`, a named batch axis where the batch is
dynamic), and `export_onnx` checks either with ONNX Runtime before it keeps it.
"""
from __future__ import annotations

import importlib.util
import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ConvolabError

ONNX_EXPORTERS = ("torchscript", "dynamo")
ONNX_OPSET = 17  # the TorchScript-based exporter's; the dynamo exporter writes its own default (20 on torch 2.14)
# The largest batch a dynamic batch is captured for: torch 2.5 and 2.6 refuse to capture a resnet20 for an unbounded
# one (a guard that the batch is not 2**63 - 1), and take it with a bound.
MAX_BATCH = 65536
# The first torch whose dynamo exporter converted every registered model (2.5 and 2.6 failed at resnet20's
# conversion with onnxscript 0.7; 2.4 has no dynamic_shapes and writes a SARIF report into the current folder).
DYNAMO_FROM = (2, 7)


class ExportError(ConvolabError):
    """An export that cannot be written or does not reproduce the PyTorch model (defined here, the export
    package's lowest module, and known as `convolab.export.ExportError`)."""


def dynamo_unavailable() -> str:
    """Why `torch.onnx.export(dynamo=True)` cannot be used in this environment, or "" where it can."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < DYNAMO_FROM or "dynamic_shapes" not in inspect.signature(torch.onnx.export).parameters:
        return (f"the dynamo ONNX exporter needs torch {'.'.join(map(str, DYNAMO_FROM))} or later (this is torch "
                f"{torch.__version__}): upgrade torch, or use `exporter` torchscript")
    if importlib.util.find_spec("onnxscript") is None:
        return ("the dynamo ONNX exporter needs the onnxscript package: pip install onnxscript (or pip install "
                "'convolab[export]'), or use `exporter` torchscript")
    return ""


@contextmanager
def _quiet_torch() -> Iterator[None]:
    """torch's own log lines (the guard errors of a capture that fails, its exporter's progress) kept off stderr:
    a failure is said in one line by the caller."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    torch_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_log.setLevel(level)


def capture(model: nn.Module, example: torch.Tensor, dynamic_batch: bool, instead: str) -> torch.export.ExportedProgram:
    """`model` (eval mode, on the CPU) captured by `torch.export.export` on `example`, its batch dynamic (up to
    MAX_BATCH) where `dynamic_batch` (`example` then holds more than one image: torch.export takes a batch of 1
    for a constant). One line (ExportError) where it cannot be captured, ending with `instead`."""
    shapes = ({0: torch.export.Dim("batch", max=MAX_BATCH)},) if dynamic_batch else None
    try:
        with torch.no_grad(), _quiet_torch():
            return torch.export.export(model, (example,), dynamic_shapes=shapes)
    except Exception as err:  # noqa: BLE001  torch.export's own errors, of many kinds
        raise ExportError(f"torch.export could not capture the model ({first_line(err)}); {instead}") from None


def write_onnx_graph(model: nn.Module, example: torch.Tensor, path: str, names: tuple[str, str],
                     dynamic_batch: bool, opset: int | None, exporter: str = "torchscript") -> None:
    """Write `model` (eval mode, on the CPU) as an ONNX graph at `path`, traced or captured on `example` (of more
    than one image where `dynamic_batch`): input and output named `names`, the batch axis dynamic where
    `dynamic_batch`, at `opset` (None: the exporter's default: ONNX_OPSET for "torchscript"). "dynamo" captures the
    model with `capture` first and converts that program, so that no capture but torch.export's is tried (torch 2.5
    and 2.6 fell back to a trace, which froze a branch on the input's values). One line (ExportError) where the
    exporter cannot be used or cannot capture or convert the model."""
    if exporter not in ONNX_EXPORTERS:
        raise ExportError(f"unknown ONNX exporter {exporter!r}: give one of {', '.join(ONNX_EXPORTERS)}")
    input_name, output_name = names
    if exporter == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer's warnings about Python ints in shapes, and torch's deprecation notices of the TorchScript
            # exporter: said once, in the README, not at every export.
            warnings.simplefilter("ignore")
            axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset or ONNX_OPSET,
                              input_names=[input_name], output_names=[output_name], dynamic_axes=axes,
                              do_constant_folding=True)
        return
    unavailable = dynamo_unavailable()
    if unavailable:
        raise ExportError(unavailable)
    program = capture(model, example, dynamic_batch, "export it with `exporter` torchscript")
    # One file, the weights inside (torch 2.14 writes them to a PATH.data beside it by default, which the rename
    # into place would leave behind): every model here is far below ONNX's 2 GB limit.
    one_file = {"external_data": False} if "external_data" in inspect.signature(torch.onnx.export).parameters else {}
    try:
        with torch.no_grad(), _quiet_torch():
            torch.onnx.export(program, (example,), path, dynamo=True, verbose=False, opset_version=opset,
                              input_names=[input_name], output_names=[output_name], **one_file)
    except Exception as err:  # noqa: BLE001  onnxscript's translation errors, of many kinds
        raise ExportError(f"the dynamo ONNX exporter could not convert the model ({first_line(err)}); export it "
                          "with `exporter` torchscript") from None


def first_line(err: BaseException) -> str:
    """The line of torch.export's long report that says what failed (its summary, else its first line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("## Exception summary") and i + 1 < len(lines):
            return lines[i + 1][:200]
    return (lines[0] if lines else type(err).__name__)[:200]
