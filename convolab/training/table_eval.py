"""`convolab evaluate` of a run trained on a labels CSV: the main target's per-class figures and confusion
matrix, and each target's score: accuracy of a class column, mean absolute error of a numeric one (in
the column's units, by the mean and std the checkpoint kept)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write, write_utf8
from .._paths import user_path
from .._platform import columns, padded
from ..data.labels_csv import TabularImages
from ..errors import ConfigError, DataError
from .batches import VectorInputs
from .evaluation import evaluate
from .inference import EvaluationReport, LoadedModel, run_amp


@dataclass
class TableReport:
    """The main target's report, and each target's score: {name: {"kind", "accuracy" or "mae", "main"}}."""

    main: EvaluationReport
    targets: dict[str, dict[str, Any]]

    def write(self, out_dir: str | Path) -> list[Path]:
        """The main target's per_class.csv, confusion.csv and confusion.png, and targets.csv."""
        files = self.main.write(out_dir)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["target", "kind", "metric", "value"])
        for name, t in self.targets.items():
            metric = "accuracy" if t["kind"] == "class" else "mae"
            writer.writerow([name, t["kind"], metric, f"{t[metric]:.6g}"])
        path = user_path(out_dir) / "targets.csv"
        atomic_write(path, lambda tmp: write_utf8(tmp, buf.getvalue()))
        return [*files, path]

    def lines(self) -> list[str]:
        """One line a target: its name, kind and score (accuracy, or MAE in the column's units), the main one marked."""
        width = max(columns(n) for n in self.targets)  # (in a terminal's columns: 年龄 is 4 wide)
        out = []
        for name, t in self.targets.items():
            score = f"accuracy {t['accuracy']:.4f}" if t["kind"] == "class" else f"MAE {t['mae']:.4g}"
            out.append(f"  {padded(name, width)}  {t['kind']:<6}  {score}" + ("  (main)" if t["main"] else ""))
        return out


def _restandardize(values: torch.Tensor, now: dict, then: dict) -> torch.Tensor:
    """Numbers standardized by this data's training rows, as the checkpoint's run standardized them."""
    return (values * now["std"] + now["mean"] - then["mean"]) / then["std"]


@torch.no_grad()
def evaluate_table(loaded: LoadedModel, data: TabularImages, batch_size: int = 256, tta: str = "none") -> TableReport:
    """Every target of a labels CSV's test rows scored by the checkpoint's model (`tta` flip: the mean of the
    logits of each item's images and their mirror images, as training scored them with --tta flip)."""
    if tta != "none" and data.vector_columns:
        raise ConfigError(f"`tta` {tta} needs a model of images only; this labels CSV has numeric inputs")
    record = loaded.checkpoint.get("table")
    if record is None:
        raise DataError(f"{data.name} is a labels CSV, but the checkpoint was not trained on one; give the "
                        "data it was trained on")
    saved = record["targets"]
    learnt = ", ".join(f"{n} ({t['kind']})" for n, t in saved.items())
    as_learnt = {}  # a class column's indices -> the checkpoint's (another CSV may hold some of its classes)
    for name, column in data.columns.items():
        kept = saved.get(name)
        if kept is None or kept["kind"] != column.kind or (column.kind == "class" and
                                                           not set(column.classes) <= set(kept["classes"])):
            raise DataError(f"column {name!r} of {data.name} is not the target the checkpoint learnt (it learnt "
                            f"{learnt}; a class column's classes must be ones the checkpoint learnt)")
        if column.kind == "class":
            as_learnt[name] = torch.tensor([kept["classes"].index(c) for c in column.classes], dtype=torch.long)
    if list(data.columns)[0] != list(saved)[0]:
        raise DataError(f"the main target of {data.name} is {data.main_column!r}, the checkpoint's {list(saved)[0]!r}")
    test, main_column = data.test, data.main_column
    labels = as_learnt[main_column][test.labels]
    targets = {n: (_restandardize(t, data.columns[n].to_dict(), saved[n]) if t.is_floating_point()
                   else as_learnt[n][t]) for n, t in test.targets.items()}
    vectors = test.vectors
    if vectors is not None:
        kept = record["vectors"]
        vectors = torch.stack([_restandardize(vectors[:, k], c.to_dict(), kept[c.name])
                               for k, c in enumerate(data.vector_columns)], 1)
    transform = VectorInputs(loaded.transform) if vectors is not None else loaded.transform

    def batches():
        for start in range(0, len(test), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(test)))
            images = test.images[idx] if vectors is None else (test.images[idx], vectors[idx])
            yield images, labels[idx], idx

    device = next(loaded.model.parameters()).device
    scales = {n: saved[n]["std"] for n in targets if saved[n]["kind"] == "number"}
    result = evaluate(loaded.model, None, labels, transform, batch_size, device, run_amp(loaded.checkpoint, device),
                      return_logits=True, targets=targets, batches=batches(), scales=scales, tta=tta)
    main = EvaluationReport.of(result["logits"], labels, list(saved[main_column]["classes"]))
    scores: dict[str, dict[str, Any]] = {data.main_column: {"kind": "class", "accuracy": main.top1, "main": True}}
    for name in targets:
        kind = data.columns[name].kind
        metric = "accuracy" if kind == "class" else "mae"
        scores[name] = {"kind": kind, metric: result[f"{'acc' if kind == 'class' else 'mae'}_{name}"], "main": False}
    return TableReport(main, scores)


__all__ = ["TableReport", "evaluate_table"]
