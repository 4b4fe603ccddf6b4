"""`convolab evaluate CHECKPOINT`: top-1, top-5, per-class accuracy and a confusion matrix, of a checkpoint or an
exported ONNX or TorchScript file."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from .._atomic import json_text
from .._paths import probe_output, writable_output, written
from .._platform import columns, padded
from ..data import TabularImages
from ..data.archive import shown
from ..errors import ConfigError
from ..export import ExportedClassifier, evaluate_exported, export_reading
from ..training.checkpoint import trained_epoch
from ..training.checkpoint_data import load_data_for
from ..training.device import resolve_device
from ..training.inference import (
    EvaluationReport,
    evaluate_checkpoint,
    load_trained_model,
    run_config,
    run_tta,
)
from ..training.table_eval import TableReport, evaluate_table
from ._args import CHECKPOINT, nonempty
from ._weights import add_pretrained_options, checkpoint_or_weights, data_of, exported_model, output_beside

HELP = ("evaluate a checkpoint or an exported ONNX/TorchScript/pt2 file: top-1/top-5, per-class accuracy, confusion "
        "matrix (CSV and PNG)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=nonempty(CHECKPOINT),
                        help="a .pt written by `convolab train`, or its run folder (best.pt is used), "
                        "a safetensors folder, a .onnx, .torchscript.pt or .pt2 file from `convolab export` (with "
                        "--data), or a model name with --pretrained")
    parser.add_argument("--data", type=nonempty("a data set name or an image folder/tar, or leave the option out "
                                                 "for the run's own data"),
                        help="data set name or image folder/tar (default: the data it was trained on, "
                        "and its --test-subset if it had one; other data are evaluated whole: their test/ split, or "
                        "every image of a folder without one)")
    parser.add_argument("--skip-bad-images", action="store_true", help="skip unreadable images, and images "
                        "whose colour mode or size differs from most (counted and named in a warning)")
    parser.add_argument("--data-dir", type=nonempty("a folder, or leave the option out"),
                        help="where torchvision data sets live (default: the run's --data-dir)")
    parser.add_argument("--tta", choices=("none", "flip"), help="test-time augmentation: flip scores the mean of "
                        "the logits of each image and its mirror image (default: the run's --tta)")
    parser.add_argument("--download", action="store_true",
                        help="download a torchvision data set (mnist, cifar10...) that is not in --data-dir yet")
    parser.add_argument("--output", type=nonempty("a folder, or leave the option out (an `evaluation` folder "
                                                   "beside the checkpoint)"),
                        help="folder for per_class.csv, confusion.csv, confusion.png "
                        "(default: an `evaluation` folder beside the checkpoint, in its run folder; SF-evaluation "
                        "beside a safetensors folder SF or an exported file F; MODEL-evaluation here with "
                        "--pretrained)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as one JSON object only (top1, top5, per_class, images, tta, "
                             "tta_from, evaluated, checkpoint, files; targets for a labels CSV's)")
    add_pretrained_options(parser)


def run(args: argparse.Namespace) -> int:
    exported = exported_model(args)
    if exported is not None:
        return _run_exported(args, exported)
    out = Path(args.output) if args.output else output_beside(args, "evaluation")
    loaded = load_trained_model(checkpoint_or_weights(args), resolve_device(args.device))
    writable_output(out, "--output", create=False)  # before the evaluation; report.write makes it
    probe_output(out, "--output")
    source = data_of(args, loaded.checkpoint, "a folder or tar of images of some of ImageNet's classes, a folder "
                                              "each named as the class (`predict` prints the names)")
    data = load_data_for(loaded.checkpoint, source, args.data_dir, args.download, whole=True,
                         skip_bad_images=args.skip_bad_images)
    tta, origin = (args.tta, "--tta") if args.tta else \
        (run_tta(loaded.checkpoint), "the run's" if "tta" in run_config(loaded.checkpoint) else "the default")
    table = evaluate_table(loaded, data, tta=tta) if isinstance(data, TabularImages) else None
    report = table.main if table is not None else evaluate_checkpoint(loaded, data, tta)
    with written(out, "--output"):
        files = (table or report).write(out)
    _print(args, f"{loaded.checkpoint['model_name']} on {source}", report, (tta, origin), files, len(loaded.classes),
           table, trained_epoch(loaded.checkpoint, args.checkpoint) if isinstance(args.checkpoint, str) else None)
    return 0


def _run_exported(args: argparse.Namespace, exported: ExportedClassifier) -> int:
    """An export scored on --data as its run scored its test images (`ExportedClassifier`, on the CPU): the check
    that the file gives the checkpoint's figures on the images it will meet."""
    name = str(args.checkpoint)
    if not args.data:
        raise ConfigError(f"{name} is an exported file, which does not record the data its run trained on: give "
                          "--data, a data set name or an image folder, tar or labels CSV")
    if args.device not in ("cpu", "auto"):
        raise ConfigError(f"--device {args.device}: an exported file is evaluated on the CPU (as `predict` runs it); "
                          "leave --device out, or evaluate the run's checkpoint on the GPU")
    out = Path(args.output) if args.output else Path(f"{name.rstrip('/')}-evaluation")
    writable_output(out, "--output", create=False)
    probe_output(out, "--output")
    data = load_data_for(export_reading(exported.meta), args.data, args.data_dir, args.download, whole=True,
                         skip_bad_images=args.skip_bad_images)
    tta, origin = (args.tta, "--tta") if args.tta else (exported.meta.tta, "the file's")
    report = evaluate_exported(exported, data, tta)
    with written(out, "--output"):
        files = report.write(out)
    _print(args, f"{exported.meta.model_name} ({name}) on {args.data}", report, (tta, origin), files,
           len(exported.classes))
    return 0


def _print(args: argparse.Namespace, what: str, report: EvaluationReport, tta: tuple[str, str], files: list[Path],
           classes: int, table: TableReport | None = None, epoch: dict | None = None) -> None:
    """The figures, each class's accuracy and the files written of `what`, a model of `classes` classes scored with
    `tta` (how, and whose choice), and which epoch of its run it is (`trained_epoch`); with --json those as one
    object, alone on stdout (`| jq .`: before, it stood between the table and the top-1 line)."""
    if args.json:
        # a figure of no images (a class the data lacks, "(other classes)") is null: JSON has no NaN
        print(json_text({"top1": report.top1, "top5": report.top5, "per_class": dict(zip(
            report.classes, report.per_class)), "images": report.count, "tta": tta[0], "tta_from": tta[1],
            "evaluated": what, "checkpoint": epoch, "files": [str(f) for f in files]}
            | ({"targets": table.targets} if table is not None else {}), indent=None), end="")
        return
    names = [shown(c) for c in report.classes]  # (a tab or newline in a class name: escaped, one row each)
    width = max(columns(c) for c in names)  # (in a terminal's columns: 猫咪 is 4 wide)
    print(f"{what}: {report.count} test images, tta {tta[0]} ({tta[1]})")
    if epoch is not None:  # (best.pt's epoch may have been chosen on these very test images)
        of = f" of {epoch['epochs']}" if epoch["epochs"] else ""
        at = f"{epoch['batch_in_epoch']} batches into epoch {epoch['epoch'] + 1}{of} (saved by a stop)" \
            if epoch["batch_in_epoch"] else f"epoch {epoch['epoch']}{of}"
        chosen = f" (the epoch of the best {epoch['chosen_by']}, judged on {epoch['judged_on']})" \
            if epoch["chosen_by"] else ""
        print(f"checkpoint: {shown(epoch['file'])}, {at}{chosen}")
    for name, acc in zip(names, report.per_class):
        print(f"  {padded(name, width)}  " + (f"{acc:.4f}" if math.isfinite(acc) else "-  (no images)"))
    if table is not None:
        print("targets:")
        print("\n".join(table.lines()))
    print(f"wrote {', '.join(str(f) for f in files)}")
    print(f"top-1 accuracy: {report.top1:.4f}")
    few = classes <= 5  # (every class among an image's top 5: 1.0 whatever the model learnt)
    print(f"top-5 accuracy: {report.top5:.4f}" + (f" (the model has {classes} classes, all among every "
                                                  "image's top 5)" if few else ""))
