"""ONNX and TorchScript export: fold batch norm, write to a temporary file, run the written model
against PyTorch eager on the same random inputs, and rename it into place only if they agree.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._paths import making, user_path
from .._platform import sigterm_as_interrupt
from .._registry import registered_name
from .._version import __version__
from ..data.decode import CROP_PCT
from ..errors import ConfigError, ConvolabError
from ..models import create_model
from ..training.checkpoint import atomic_write, checkpoint_model, load_checkpoint
from ..training.inference import finite_outputs, input_reading, run_tta
from .arguments import checked_sizes, input_taken
from .fold import count_batchnorm, fold_batchnorm
from .meta_values import meta_values
from .onnx_graph import ONNX_EXPORTERS, ExportError, first_line, write_onnx_graph
from .outputs import check_file_output, check_replaced_export
from .portable import portable

# An export passes when, for every checked image, each logit is within
#     TOLERANCE + RTOL * (the largest |logit| of that image in PyTorch)
# of PyTorch's: torch.allclose's absolute-plus-relative rule with the image's largest logit as the
# scale, because float32 round-off in a logit comes from the sums that make all of them, not from that
# logit's own size (a resnet50 with realistic BN statistics: logits up to 304, every logit of the image,
# small ones too, off by up to 2.1e-4 = 7e-7 of the largest; per element even rtol 1e-4 fails it).
# RTOL = 1e-5 is ~84 float32 epsilons (2**-23 = 1.2e-7): 10-20x the 5e-7..8e-7 measured, while an
# error in the export itself (one bias off by 1e-2 among logits of 300) is still refused.
TOLERANCE = 1e-4  # the absolute part: enough for logits of order 1
RTOL = 1e-5  # the relative part, times the image's largest |logit|
log = logging.getLogger("convolab")

INPUT_NAME, OUTPUT_NAME = "input", "logits"
TORCHSCRIPT_META = "convolab.json"  # the name of the metadata in a TorchScript file's _extra_files
ONNX_MISSING = "ONNX export needs the onnx and onnxruntime packages: pip install onnx onnxruntime"
DIVERGED = ("outputs NaN or inf on random inputs: its weights diverged (a run whose loss became NaN?); export another "
            "checkpoint, e.g. an earlier epoch's")
ORT_MISSING = ("running an .onnx file needs onnxruntime, which is not installed: pip install onnxruntime "
               "(or pip install 'convolab[export]'), or give the .pt checkpoint or run folder instead")


META_REVISION = 2  # of an export's metadata: 2 since 2026-11-30 (squash recorded since 2026-11-29 23:00; none before)
_WARNED: set[str] = set()


def _warn_once(source: str | Path, line: str) -> None:
    if str(source) not in _WARNED:
        _WARNED.add(str(source))
        log.warning("%s", line)


def _own_size(meta: ExportMeta) -> tuple[int, int] | None:
    """The input size the export's model is built for by default (None: no registered model of its name)."""
    if registered_name(meta.model_name) is None:
        return None
    try:
        with torch.device("meta"):  # (nothing allocated: only its data_config is read)
            config = getattr(create_model(meta.model_name, in_chans=meta.in_chans), "data_config", None)
    except ConvolabError:
        return None
    return tuple(config.input_size[-2:]) if config is not None else None


@dataclass(frozen=True)
class ExportMeta:
    """What a user of the exported file needs to feed it: written into the file itself."""

    model_name: str
    classes: tuple[str, ...]
    in_chans: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # "resize": the image resized to image_size on the batch (bilinear, antialiased), "squash": by PIL's bilinear
    # to uint8 first, as an image folder's cache resized a run's files for --image-size; "center-crop": as
    # streamed photos
    preprocess: str = "resize"
    # "center-crop": resize to image_size / crop_pct, crop the centre (published weights: their own, e.g. 224/232)
    crop_pct: float = CROP_PCT
    interpolation: str = "bilinear"  # of that resize: "bilinear", or "bicubic" (timm's weights)
    crop_mode: str = ""  # "center-crop": "L" or "RGB", the mode the run's stream decoded in ("": by in_chans)
    tta: str = "none"  # how the run scored its test images: "flip", each the mean of it and its mirror image's logits

    def to_strings(self) -> dict[str, str]:
        """Flat string key/values (ONNX metadata_props hold strings only)."""
        values = {k: json.dumps(list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        values["model_name"] = self.model_name
        values["preprocess"] = self.preprocess
        values["interpolation"] = self.interpolation
        values["crop_mode"] = self.crop_mode
        values["tta"] = self.tta
        values["input"] = f"{INPUT_NAME}: float32 N x C x H x W, (pixel / 255 - mean) / std"
        values["output"] = f"{OUTPUT_NAME}: float32 N x classes (before softmax)"
        values["producer"] = f"convolab {__version__}"
        values["meta_revision"] = str(META_REVISION)
        return values

    @classmethod
    def from_strings(cls, values: dict[str, str], source: str | Path = "the model") -> ExportMeta:
        """The metadata an export recorded as strings; `source`: the file, as the error line names it. An ExportError
        of one line naming it and the field, for one missing, garbled or out of range (a file edited or damaged)."""
        decoded, problem = meta_values(values)
        if problem is not None:
            raise ExportError(f"{source}: {problem}; the file was edited or damaged: export the model again with "
                              "`convolab export`")
        missing = next((key for key in ("classes", "in_chans", "image_size", "mean", "std") if key not in decoded), "")
        if missing:
            raise ExportError(f"{source}'s metadata lacks or garbles {missing!r}; export it with `convolab export`, or "
                              "in Python with meta=ExportMeta(...) for a model without num_classes and "
                              "data_config")
        meta = cls(model_name=decoded["model_name"], classes=tuple(decoded["classes"]), in_chans=decoded["in_chans"],
                   image_size=tuple(decoded["image_size"]),  # type: ignore[arg-type]
                   mean=tuple(map(float, decoded["mean"])), std=tuple(map(float, decoded["std"])),
                   preprocess=decoded["preprocess"], crop_pct=float(decoded["crop_pct"]),
                   interpolation=decoded["interpolation"], crop_mode=decoded["crop_mode"], tta=decoded["tta"])
        own = _own_size(meta) if "meta_revision" not in values and meta.preprocess == "resize" else None
        if own is not None and meta.image_size != own:  # (a model of no registered name: its own size unknown)
            _warn_once(source, f"{source} records no metadata revision (a convolab before 2026-11-30 exported it), "
                       "and one before 2026-11-29 23:00 recorded as 'resize' the preprocessing of a run that squashed "
                       f"its image folder's files to `image_size` as it read them: if its run read an image folder at "
                       f"`image_size` {meta.image_size[0]}, export it again from its checkpoint (its predictions "
                       "differ slightly from the checkpoint's)")
        return meta

    @classmethod
    def of_model(cls, model: nn.Module, input_size: tuple[int, int, int]) -> ExportMeta | None:
        """What a model exported without `meta` says of itself: its `num_classes` (class names "0".."N-1",
        or its `pretrained_cfg` classes when they are N), the exported input size and the mean and std of
        its `data_config`, as every convolab model has them. None for a model that lacks either (a plain
        nn.Module, a features-only model): its normalization and classes are unknown, so nothing is guessed."""
        config, classes = getattr(model, "data_config", None), getattr(model, "num_classes", 0)
        chans = int(input_size[0])
        if config is None or not isinstance(classes, int) or classes < 1:
            return None
        mean, std = tuple(map(float, config.mean)), tuple(map(float, config.std))
        if len(mean) != chans or len(std) != chans:
            return None
        cfg = getattr(model, "pretrained_cfg", None) or {}
        names = tuple(map(str, cfg.get("classes") or ()))
        names = names if len(names) == classes else tuple(str(i) for i in range(classes))
        return cls(getattr(model, "model_name", "") or type(model).__name__, names, chans,
                   (int(input_size[1]), int(input_size[2])), mean, std, str(cfg.get("preprocess", "resize")),
                   float(cfg.get("crop_pct", CROP_PCT)), str(cfg.get("interpolation", "bilinear")))


@dataclass(frozen=True)
class ExportResult:
    """An export written and checked: its file and format, how far its logits are from PyTorch eager's, at which
    batch sizes, and how many batch norms were folded."""

    path: Path
    format: str
    max_abs_diff: float  # exported vs PyTorch eager (unfolded), over every checked batch size
    batch_sizes_checked: tuple[int, ...]
    folded_bn: int  # batch norms merged into convolutions
    max_rel_diff: float = 0.0  # the largest difference over its image's largest |logit|, over every image


def model_from_checkpoint(path: str | Path | dict[str, Any]) -> tuple[nn.Module, ExportMeta]:
    """The eval-mode model a `convolab train` checkpoint (or run folder) holds, and its metadata."""
    ckpt = load_checkpoint(path)
    model = checkpoint_model(ckpt, path)
    meta = ExportMeta(ckpt["model_name"], tuple(ckpt["classes"]), int(ckpt["in_chans"]),
                      tuple(ckpt["image_size"]), tuple(ckpt["mean"]), tuple(ckpt["std"]),  # type: ignore[arg-type]
                      **input_reading(ckpt), tta=run_tta(ckpt))  # (as `predict` reads and scores a checkpoint's)
    return model.eval(), meta


def _prepare(model: nn.Module, fold: bool) -> tuple[nn.Module, nn.Module, int]:
    """(reference, model to export, batch norms folded), both float32 eval-mode copies on the CPU."""
    if getattr(model, "vector_inputs", 0):  # (the exported graph takes the image only: they would read as zeros)
        raise ExportError(f"the model also takes {model.vector_inputs} numeric input(s) of a labels CSV besides its "
                          "image, which an exported model could not be given; export it as safetensors, or score "
                          "it on its labels CSV (convolab evaluate RUN --data labels.csv)")
    reference = copy.deepcopy(model).cpu().float().eval()
    exported = fold_batchnorm(reference) if fold else reference
    return reference, exported, count_batchnorm(reference) - count_batchnorm(exported)


@dataclass
class Prepared:
    """Before an export writes: the model (batch norms folded), how many, the check's inputs and PyTorch's outputs."""

    model: nn.Module
    folded: int
    batch_sizes: tuple[int, ...]
    inputs: list[torch.Tensor]
    expected: list[torch.Tensor]
    meta: ExportMeta | None


def prepare_export(model: nn.Module, path: str | Path, example: str, input_size: tuple[int, int, int],
                   batch_size: int, dynamic_batch: bool, meta: ExportMeta | None, fold: bool, what: str) -> Prepared:
    """What every export checks and prepares before any work: `path` (`example`: the name a refusal suggests), the
    batch sizes, the model folded, PyTorch's finite outputs (`what` names the model) and `meta` fitting them."""
    input_size, batch_sizes = checked_sizes(model, input_size, batch_size, dynamic_batch)  # (a name, a bare 32)
    check_file_output(path, example=example, create_parents=True)  # before any work
    check_replaced_export(path)
    reference, exported, folded = _prepare(model, fold)
    inputs = _random_inputs(input_size, batch_sizes)
    meta = meta if meta is not None else ExportMeta.of_model(model, input_size)
    with input_taken(reference, input_size):  # (3 channels given 1: one line, not torch's shapes)
        expected = reference_outputs(reference, inputs, what)
    _check_meta(meta, input_size, expected[0])
    return Prepared(exported, folded, batch_sizes, inputs, expected, meta)


def _random_inputs(input_size: tuple[int, int, int], batch_sizes: tuple[int, ...]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(n, *input_size, generator=gen) for n in batch_sizes]


@torch.no_grad()
def reference_outputs(reference: nn.Module, inputs: list[torch.Tensor], what: str = "the model") -> list[torch.Tensor]:
    """PyTorch's outputs for `inputs`, refused (one line naming `what`) where any is NaN or inf: a diverged
    model, which no export could reproduce (NaN differs from itself) and none should serve."""
    outputs = [reference(x) for x in inputs]
    if not isinstance(outputs[0], torch.Tensor):  # (a features_only model's list of feature maps, a dict)
        raise ExportError(f"{what} gives a {type(outputs[0]).__name__} of outputs, not one tensor of logits, and an "
                          "export here has one output: export the model without features_only, or wrap it in a "
                          "module whose forward returns one tensor")
    outputs = [out.float() for out in outputs]
    if not finite_outputs(outputs):  # (the test evaluate and predict make, with export's own line)
        raise ExportError(f"{what} {DIVERGED}")
    return outputs


def _check_meta(meta: ExportMeta | None, input_size: tuple[int, int, int], outputs: torch.Tensor) -> None:
    """`meta` against the exported input size and the model's N x classes output: a file whose metadata do
    not fit its model would be read wrongly by `predict` (a class index past the names, images of the wrong
    size fed to the graph)."""
    if meta is None:
        return
    problems = []
    if (meta.in_chans, *meta.image_size) != tuple(input_size):
        problems.append(f"it says inputs of {meta.in_chans}x{'x'.join(map(str, meta.image_size))}, but input_size "
                        f"is {'x'.join(map(str, input_size))}")
    if len(meta.mean) != meta.in_chans or len(meta.std) != meta.in_chans:
        problems.append(f"its mean and std have {len(meta.mean)} and {len(meta.std)} values for {meta.in_chans} "
                        "input channel(s)")
    if outputs.dim() != 2:
        problems.append(f"it lists classes, but the model gives outputs of shape {tuple(outputs.shape)}, not N x "
                        "classes")
    elif len(meta.classes) != outputs.shape[1]:
        problems.append(f"it lists {len(meta.classes)} classes, but the model gives {outputs.shape[1]} outputs")
    if problems:
        raise ExportError(f"meta does not fit the model: {'; '.join(problems)}; give an ExportMeta of the model's "
                          "classes, input size, mean and std, or meta=None for the model's own; nothing was written")


def _differences(expected: list[torch.Tensor], run: Callable[[torch.Tensor], torch.Tensor],
                 inputs: list[torch.Tensor]) -> torch.Tensor:
    """Per image checked: (largest |exported - PyTorch| over its logits, largest |PyTorch logit|)."""
    rows = []
    with torch.no_grad():
        for want, x in zip(expected, inputs, strict=True):
            got = run(x).float()
            if got.shape != want.shape:
                raise ExportError(f"the exported model gives shape {tuple(got.shape)} for a batch of {len(x)}, "
                                  f"PyTorch {tuple(want.shape)}")
            diff, scale = (want - got).abs().reshape(len(x), -1), want.abs().reshape(len(x), -1)
            rows.append(torch.stack([diff.max(1).values, scale.max(1).values], 1))
    return torch.cat(rows)


def _write_checked(path: Path, fmt: str, write: Callable[[str], torch.Tensor], tolerance: float,
                   rtol: float, folded: int) -> tuple[float, float]:
    """Write through `write(tmp) -> _differences`; rename into place only if every image is within
    `tolerance + rtol * its largest |logit|`. (largest absolute, largest relative difference)."""
    # (`path` was checked by `check_file_output` before any work)
    found: dict[str, float] = {}
    # the PyTorch outputs are finite (`reference_outputs`): a large difference is the export's or round-off's
    # (--no-fold only where batch norms were folded: a model with none, e.g. lenet5, exports the same without)
    hint = "try `fold=False` to export without batch-norm folding" if folded else \
        "without folding, a larger difference is float32 round-off: try a larger `tolerance` or `rtol`"

    def checked(tmp: str) -> None:
        rows = write(tmp).double()
        diff, scale = rows[:, 0], rows[:, 1]
        found["abs"] = worst = diff.max().item()
        found["rel"] = rel = (diff / scale.clamp_min(1e-30)).max().item()
        if not bool((diff <= tolerance + rtol * scale).all()):  # also refuses NaN
            raise ExportError(f"the {fmt} export differs from the PyTorch model by up to {worst:.3g} "
                              f"({rel:.3g} of an image's largest logit |{scale.max().item():.3g}|; tolerance "
                              f"{tolerance:g} + {rtol:g} x that logit) on the same random inputs; nothing was "
                              f"written ({hint})")

    try:  # (the missing folders of `path` made, as a safetensors export makes its own, and removed on failure)
        with sigterm_as_interrupt(), making(path.parent):
            atomic_write(path, checked)
    except ConvolabError:  # a full disk (DiskFullError, an OSError too) or the check: its own line
        raise
    except OSError as err:
        raise ConfigError(f"`path` {path} cannot be written ({err.strerror or err}); "
                          "choose another file") from None
    return found["abs"], found["rel"]


def export_onnx(model: nn.Module, path: str | Path, input_size: tuple[int, int, int], batch_size: int = 1,
                dynamic_batch: bool = False, meta: ExportMeta | None = None, fold: bool = True,
                tolerance: float = TOLERANCE, opset: int | None = None, rtol: float = RTOL,
                what: str = "the model", exporter: str = "torchscript") -> ExportResult:
    """Write `model` as ONNX (input `input` N x C x H x W float32, output `logits`), checked with
    ONNX Runtime against PyTorch eager; `meta` goes into the file's metadata_props (default: the model's
    own, `ExportMeta.of_model`, so that `predict_onnx` reads the file; none for a model without
    num_classes and data_config; a `meta` that does not fit the model, its classes its outputs or its
    sizes `input_size`, is refused; a model outputting NaN or inf too, in a line naming it as `what`). `path`
    may not be a file a run folder keeps (its checkpoints, config.json, metrics, curves: `RUN_WRITES`) nor a
    safetensors folder's, nor a device or a FIFO. `exporter`: which of torch's ONNX exporters writes the graph,
    "torchscript" or "dynamo" (torch.export and onnxscript; `onnx_graph`); `opset` None: the exporter's own."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ExportError(ONNX_MISSING) from None
    if exporter not in ONNX_EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(ONNX_EXPORTERS)}, got {exporter!r}")
    path = user_path(path)
    ready = prepare_export(model, path, "model.onnx", input_size, batch_size, dynamic_batch, meta, fold, what)
    inputs, expected, meta = ready.inputs, ready.expected, ready.meta
    exported = portable(ready.model)  # (ceil-mode average pools as floor-mode ones, which all runtimes compute alike)

    def write(tmp: str) -> torch.Tensor:
        # (the dynamo exporter captures a dynamic batch on the 3 images: torch.export takes a batch of 1 for a constant)
        example = inputs[-1] if exporter == "dynamo" else inputs[0]
        write_onnx_graph(exported, example, tmp, (INPUT_NAME, OUTPUT_NAME), dynamic_batch, opset, exporter)
        proto = onnx.load(tmp)
        if meta is not None:
            for key, value in meta.to_strings().items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
        proto.producer_name = "convolab"
        onnx.save(proto, tmp)
        try:
            session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
            return _differences(expected, lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]),
                                inputs)
        except Exception as err:  # noqa: BLE001  onnxruntime's own untyped errors (a graph it refuses, a shape)
            if isinstance(err, (ConvolabError, MemoryError)):
                raise
            raise ExportError(f"ONNX Runtime could not run the {exporter} exporter's graph ({first_line(err)}); "
                              "nothing was written (try the other `exporter`, or `batch_size` N)") from None

    diff, rel = _write_checked(Path(path), "ONNX", write, tolerance, rtol, ready.folded)
    return ExportResult(Path(path), "onnx", diff, ready.batch_sizes, ready.folded, rel)


class _FixedBatch(nn.Module):
    """A traced model that refuses batches of another size than the one it was exported for, as an ONNX model
    of a fixed batch does (scripted around the traced graph, which itself takes any batch size)."""

    def __init__(self, model: nn.Module, batch_size: int):
        super().__init__()
        self.model, self.batch_size = model, batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.batch_size:
            raise RuntimeError("this TorchScript model was exported for batches of " + str(self.batch_size)
                               + " images, got " + str(x.shape[0])
                               + "; export it again with `convolab export --batch-size N` for another size, or "
                               "without it for any")
        return self.model(x)


def export_torchscript(model: nn.Module, path: str | Path, input_size: tuple[int, int, int],
                       batch_size: int = 1, dynamic_batch: bool = False, meta: ExportMeta | None = None,
                       fold: bool = True, tolerance: float = TOLERANCE, rtol: float = RTOL,
                       fixed_batch: bool = False, what: str = "the model") -> ExportResult:
    """Write `model` traced and frozen as TorchScript, checked with torch.jit.load against PyTorch
    eager; `meta` goes into the file as `_extra_files["convolab.json"]` (default: the model's own,
    `ExportMeta.of_model`, so that `read_torchscript_meta` reads the file). `path` as for `export_onnx`.
    The traced model takes any batch size (`batch_size` is the one it is traced and checked at; with
    `dynamic_batch`, two are checked) unless `fixed_batch`: then it refuses any other, as an ONNX export of a
    fixed batch does."""
    if fixed_batch and dynamic_batch:
        raise ConfigError("fixed_batch and dynamic_batch contradict each other; give one")
    path = user_path(path)
    ready = prepare_export(model, path, "model.torchscript.pt", input_size, batch_size, dynamic_batch, meta, fold,
                           what)
    exported, inputs = ready.model, ready.inputs
    extra = {TORCHSCRIPT_META: json.dumps(ready.meta.to_strings() if ready.meta is not None else {})}

    def write(tmp: str) -> torch.Tensor:
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer warnings about Python ints in shapes, and TorchScript's deprecation notice.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(exported, inputs[0], check_trace=False)
            if fixed_batch:
                traced = torch.jit.script(_FixedBatch(traced, batch_size).eval())
            traced = torch.jit.freeze(traced)
            # Saved to memory and written from Python: torch.jit.save's own file writer, meeting a full disk,
            # throws in a C++ destructor, which aborts the process (SIGABRT) and leaves the partial file.
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer, _extra_files=extra)
            Path(tmp).write_bytes(buffer.getvalue())
            loaded = torch.jit.load(tmp, map_location="cpu")
        return _differences(ready.expected, loaded, inputs)

    diff, rel = _write_checked(Path(path), "TorchScript", write, tolerance, rtol, ready.folded)
    return ExportResult(Path(path), "torchscript", diff, ready.batch_sizes, ready.folded, rel)


def read_torchscript_meta(path: str | Path) -> tuple[torch.jit.ScriptModule, ExportMeta]:
    """A TorchScript file written by `export_torchscript` and its metadata; an ExportError of one line for a
    missing file or one that is not TorchScript (an .onnx file, a training checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"TorchScript file {path} does not exist")
    extra = {TORCHSCRIPT_META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception:  # noqa: BLE001  torch raises RuntimeError (not a zip, no code in it) and others for foreign files
        raise ExportError(f"{path} is not a TorchScript export (torch.jit.load cannot read it: an .onnx file or a "
                          "training checkpoint?); give a file written by `convolab export --format torchscript` or "
                          "export_torchscript") from None
    return module, meta_from_extra(extra[TORCHSCRIPT_META], path, "torchscript")


def meta_from_extra(text: str | bytes, path: Path, fmt: str) -> ExportMeta:
    """The metadata an export keeps in its extra file convolab.json (a TorchScript file's, a pt2 archive's), read
    back; one line where it is not a JSON object (`fmt`: the --format that writes the file again)."""
    try:
        values = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text) if text else {}
        problem = "" if isinstance(values, dict) else f"a JSON {type(values).__name__}, not an object of strings"
    except ValueError as err:  # (UnicodeDecodeError and JSONDecodeError)
        problem = f"not UTF-8 JSON ({str(err).splitlines()[0][:80]})"
    if problem:
        raise ExportError(f"{path}: its metadata ({TORCHSCRIPT_META}) is {problem}; the file was edited or damaged: "
                          f"export the model again with `convolab export --format {fmt}`")
    return ExportMeta.from_strings(values, path)
