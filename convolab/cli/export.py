"""`convolab export CHECKPOINT --format onnx|torchscript|safetensors`: a checked inference file (or weights
folder) from a trained model or a model's published weights."""
from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from ..errors import ConfigError
from ..export import export_onnx, export_program, export_safetensors, export_torchscript, model_from_checkpoint
from ..export.exporters import RTOL, TOLERANCE
from ..export.onnx_graph import ONNX_EXPORTERS
from ..export.outputs import check_file_output, check_folder_output, check_replaced_export
from ..training.safetensors_io import is_safetensors
from ._args import CHECKPOINT, non_negative_float, nonempty, positive_float, positive_int
from ._weights import (
    TORCHSCRIPT_SUFFIX,
    add_pretrained_options,
    checkpoint_or_weights,
    given_checkpoint,
    wants_pretrained,
)

HELP = ("export a trained model to ONNX, TorchScript or a torch.export program (batch norm folded, checked against "
        "PyTorch), or its weights to a safetensors folder (model.safetensors + config.json, no pickle)")

SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2",
            "safetensors": "-safetensors"}  # the last: a folder
# The suffixes a format's files are known by: an --out ending in one of another format is refused (predict
# reads a file by its suffix), and one ending in .onnx, .pt, .pth or .pt2 chooses the format when --format is not
# given.
FORMAT_OF_SUFFIX = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".pt2": "pt2",
                    ".safetensors": "safetensors"}
WHAT = {"onnx": "an ONNX file", "torchscript": "a TorchScript file", "pt2": "a torch.export program",
        "safetensors": "safetensors weights"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=nonempty(CHECKPOINT),
                        help="a run folder or a .pt checkpoint written by `convolab train`, a "
                        "safetensors folder, or a model name with --pretrained")
    parser.add_argument("--format", choices=tuple(SUFFIXES),
                        help="onnx: one file for ONNX Runtime (any language, no convolab needed); torchscript: "
                        "one file for torch.jit.load (PyTorch, no convolab needed; deprecated by PyTorch); pt2: "
                        "one torch.export program for torch.export.load (PyTorch 2.x, no convolab needed); "
                        "safetensors: a folder of the weights and the model's record, for convolab (create_model, "
                        "--resume, fine-tuning); `convolab predict` and `evaluate` read all four (default: "
                        "torchscript for an --out ending in .pt or .pth, pt2 for .pt2, else onnx)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=positive_int, help="fix the batch size of the exported model "
                       "(onnx, torchscript, pt2)")
    batch.add_argument("--dynamic-batch", action="store_true",
                       help="any batch size (the default when --batch-size is not given; onnx, torchscript, pt2)")
    parser.add_argument(
        "--out", type=nonempty("a file (a folder for safetensors), or leave the option out (next to the checkpoint)"),
        help="output file, or folder for safetensors; a file ending in another format's suffix (.onnx, .pt or .pth, "
             ".pt2, .safetensors) is refused, and so is a file the run keeps (best.pt, last.pt, config.json, metrics, "
             "curves), any other existing file but an export, or a folder holding a run (default: next to the "
             "checkpoint, e.g. RUN/best.onnx, "
             "RUN/best.torchscript.pt, RUN/best.pt2, RUN/best-safetensors; beside a safetensors folder SF, SF.onnx, "
             "SF.torchscript.pt or SF.pt2; MODEL.onnx here with --pretrained)")
    parser.add_argument("--tolerance", type=positive_float,
                        help=f"absolute part of the difference from PyTorch accepted (default: {TOLERANCE:g}; onnx, "
                             "torchscript, pt2)")
    parser.add_argument("--rtol", type=non_negative_float,
                        help="relative part: each image's logits may also differ by this times its largest "
                             f"|logit|, float32 round-off in deep nets (default: {RTOL:g}; onnx, torchscript, pt2)")
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="keep batch norms as they are instead of folding them into the convolutions (onnx, "
                             "torchscript, pt2)")
    parser.add_argument(
        "--onnx-exporter", choices=ONNX_EXPORTERS,
        help="which of torch's ONNX exporters writes the graph: torchscript (torch.onnx.export with dynamo=False; "
             "deprecated by PyTorch but fast) or dynamo (torch.export and onnxscript, PyTorch's default since 2.9, "
             "slower; needs pip install onnxscript) (default: torchscript; onnx only)")
    add_pretrained_options(parser)


def chosen_format(args: argparse.Namespace) -> str:
    """--format, else the format --out's suffix names (.onnx, .pt, .pth), else onnx; the options that shape
    an ONNX, TorchScript or pt2 export are refused with safetensors, which writes the weights as they are."""
    suffix = Path(args.out).suffix.lower() if args.out else ""
    fmt = args.format or ("torchscript" if suffix in (".pt", ".pth") else "pt2" if suffix == ".pt2" else "onnx")
    if args.onnx_exporter and fmt != "onnx":
        raise ConfigError(f"--onnx-exporter chooses how an ONNX file is written, but --format {fmt} "
                          f"{'was given' if args.format else 'follows from --out ' + args.out}: leave "
                          "--onnx-exporter out, or give --format onnx")
    if fmt == "safetensors":
        given = [flag for flag, on in (("--batch-size", args.batch_size is not None),
                                       ("--dynamic-batch", args.dynamic_batch), ("--no-fold", not args.fold),
                                       ("--tolerance", args.tolerance is not None), ("--rtol", args.rtol is not None))
                 if on]
        if given:
            raise ConfigError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} an ONNX or TorchScript "
                              "export, not --format safetensors, which writes the weights as they are and checks "
                              f"them read back bit for bit; leave {'it' if len(given) == 1 else 'them'} out")
    return fmt


def refuse_a_suffix_of_another_format(args: argparse.Namespace, fmt: str, out: Path) -> None:
    """One line when --out ends in a suffix another format's files are known by (a TorchScript file named .onnx
    would be read by predict as ONNX, and fail)."""
    suffix = out.suffix.lower()
    claimed = FORMAT_OF_SUFFIX.get(suffix, fmt)
    if claimed == fmt:
        return
    stem = out.name[:-len(suffix)].removesuffix(".torchscript")
    given = f"--format {fmt}" if args.format else f"the default format, {fmt},"
    raise ConfigError(f"--out {out} ends in {suffix}, the suffix of {WHAT[claimed]}, but {given} writes "
                      f"{WHAT[fmt]}: name it {out.with_name(stem + SUFFIXES[fmt])}, or give --format {claimed}")


def default_output(args: argparse.Namespace, fmt: str) -> Path | None:
    """Beside the checkpoint, named after it (RUN/best.onnx, RUN/best-safetensors, x.onnx for x.pt or
    x.safetensors); beside a safetensors folder, named after it (SF.onnx), never inside it, and None (a copy
    needs --out) for safetensors of a safetensors folder; MODEL.onnx here with --pretrained."""
    if wants_pretrained(args):
        return Path(args.checkpoint + SUFFIXES[fmt])  # here, named after the model
    path = given_checkpoint(args.checkpoint)
    if path.is_dir() and is_safetensors(path):
        return None if fmt == "safetensors" else path.with_name(path.name + SUFFIXES[fmt])
    path = checkpoint_file(path)
    stem = path.name[:-len(path.suffix)] if path.suffix.lower() in (".pt", ".pth", ".safetensors") \
        else path.name
    return path.with_name(stem + SUFFIXES[fmt])


def checkpoint_file(path: Path) -> Path:
    """The file (or safetensors folder) that loading `path` reads: a run folder's best.pt, else its last.pt."""
    if path.is_dir() and not is_safetensors(path):
        return path / ("best.pt" if (path / "best.pt").is_file() else "last.pt")
    return path


def run(args: argparse.Namespace) -> int:
    fmt = chosen_format(args)
    instead = default_output(args, fmt)
    out = Path(args.out) if args.out else instead
    if out is None:
        raise ConfigError(f"{args.checkpoint} is already a safetensors folder: give --out FOLDER for a checked "
                          "copy of it elsewhere")
    if wants_pretrained(args) or Path(args.checkpoint).expanduser().exists():  # (a missing one: said by its loading)
        source = None if wants_pretrained(args) else checkpoint_file(Path(args.checkpoint).expanduser())
        if fmt == "safetensors":
            check_folder_output(out, source, instead)
        else:
            check_file_output(out, source, instead, example=instead.name if instead else f"model{SUFFIXES[fmt]}",
                              create_parents=True)  # (made by the export, as a safetensors folder is)
            check_replaced_export(out)  # (before the model is read)
    refuse_a_suffix_of_another_format(args, fmt, out)
    source = checkpoint_or_weights(args)
    if fmt == "safetensors":
        saved = export_safetensors(source, out)
        print(f"wrote {', '.join(map(str, saved.files))} (safetensors, {saved.model_name}, {saved.tensors} tensors; "
              f"read back: the same outputs, largest difference {saved.max_abs_diff:.3g})")
        return 0
    model, meta = model_from_checkpoint(source)
    # (a fixed batch: ONNX's input shape, or a TorchScript model that refuses another batch, as ONNX Runtime does)
    export = partial(export_onnx, exporter=args.onnx_exporter or "torchscript") if fmt == "onnx" \
        else export_program if fmt == "pt2" else partial(export_torchscript, fixed_batch=args.batch_size is not None)
    try:
        result = export(model, out, (meta.in_chans, *meta.image_size), batch_size=args.batch_size or 1,
                        dynamic_batch=args.batch_size is None, meta=meta, fold=args.fold,
                        tolerance=TOLERANCE if args.tolerance is None else args.tolerance,
                        rtol=RTOL if args.rtol is None else args.rtol,
                        what="the model" if isinstance(source, dict) else f"the model of {source}")
    except (MemoryError, RuntimeError) as err:  # (the check batch, or its activations, beyond the memory)
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        given = f"--batch-size {args.batch_size}" if args.batch_size else "the batches of 1 and 3 images"
        raise ConfigError(f"{given}: the batch the export is checked with does not fit in this machine's memory "
                          "(allocating it failed); give a smaller --batch-size, or none (any batch size, checked "
                          "at 1 and 3)") from None
    batch = "any batch size" if args.batch_size is None else f"batch size {args.batch_size}"
    size = "x".join(map(str, (meta.in_chans, *meta.image_size)))
    how = f"onnx, {args.onnx_exporter or 'torchscript'} exporter" if fmt == "onnx" else fmt
    print(f"wrote {result.path} ({how}, {meta.model_name}, input {size}, {batch}, "
          f"{result.folded_bn} batch norms folded)")
    print(f"largest difference from PyTorch: {result.max_abs_diff:.3g} ({result.max_rel_diff:.3g} of the "
          f"image's largest logit; batch sizes {', '.join(map(str, result.batch_sizes_checked))})")
    heads = [name for name in getattr(model, "task_classes", {}) if name != "main"]
    if heads:  # (the exported graph is forward(): the main output; predict reads one output)
        print(f"not exported: the model's other head{'s' if len(heads) > 1 else ''} {', '.join(heads)}; the "
              f"{fmt} model gives the main output alone (--format safetensors keeps every head)")
    if fmt == "torchscript" and not result.path.name.lower().endswith(TORCHSCRIPT_SUFFIX):
        # (a program runs code as it loads: predict and evaluate run one only under the name export gives it)
        renamed = result.path.name[:-len(result.path.suffix)] + TORCHSCRIPT_SUFFIX
        print(f"predict and evaluate run a TorchScript file only under a name ending {TORCHSCRIPT_SUFFIX} (a .pt is "
              f"read as a checkpoint): rename it {renamed} to score it with them")
    return 0
