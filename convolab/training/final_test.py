"""The test split a run kept unseen: where each epoch is scored on validation images (a folder's val/ beside its
test/, or --val-fraction's, held out of the training split of data with a test split of their own:
`LabelledImages.with_validation`), the test split is scored once, at the end, with best.pt, as `convolab evaluate
RUN` scores it (Lightning's `fit` then `test`), into the run folder's test.json."""
from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

from .._atomic import atomic_write, json_text, write_utf8
from ..data.base import LabelledImages
from ..data.labels_csv import TabularImages
from ..errors import DataError, way_on
from .build import Run
from .checkpoint import load_checkpoint, served_weights
from .inference import as_trained, evaluate_checkpoint, run_tta
from .rundir import TEST_FILE, resume_call
from .table_eval import evaluate_table


def score_unseen_test(run: Run, checkpoint: str = "best.pt") -> dict[str, Any]:
    """The run's `checkpoint` scored on the test split its data kept unseen, as `convolab evaluate` scores a
    checkpoint (its served weights, the run's precision and --tta, a batch of 256 at least); the figures are written
    to test.json in the run folder (with several processes, call it on rank 0 alone: the scoring is one process's)."""
    path = Path(run.run_dir) / checkpoint
    state = load_checkpoint(path)
    model = copy.deepcopy(run.model)  # (the run's own class: a model of no registered name is scored too)
    model.load_state_dict(served_weights(state, path))
    loaded, data, tta = as_trained(model, state, path, run.device), run.data.scoring_unseen_test(), run_tta(state)
    table = evaluate_table(loaded, data, tta=tta) if isinstance(data, TabularImages) else None
    report = table.main if table is not None else evaluate_checkpoint(loaded, data, tta)
    if not report.count:  # (streamed files, each unreadable and skipped: a figure of no image would be nan)
        score = way_on(f"convolab train --resume {shlex.quote(str(run.run_dir))}", resume_call(run.run_dir))
        raise DataError(f"no image of the test split {run.config.data} kept unseen could be read (each was skipped "
                        f"by `skip_bad_images`); repair or remove them, then score it: {score}")
    result = {
        "checkpoint": checkpoint, "epoch": state.get("epoch"), "chosen_by": run.config.monitor,
        "top1": report.top1, "top5": report.top5, "images": report.count, "tta": tta,
        "validation_images": len(run.data.test), "data": run.config.data,
        "per_class": dict(zip(report.classes, report.per_class)),
        **({"targets": table.targets} if table is not None else {}),
    }
    atomic_write(path.parent / TEST_FILE, lambda tmp: write_utf8(tmp, json_text(result)))
    return result


def validated(run_dir: str | Path) -> bool:
    """Whether the run in `run_dir` scored its epochs on validation images, its test split kept unseen (its config.json
    says so)."""
    try:
        resolved = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("resolved")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(resolved, dict) and bool(resolved.get("validation"))


def unscored(run_dir: str | Path) -> bool:
    """Whether a run that validated holds a best.pt whose test.json is missing: the scoring at its end was stopped,
    or its write failed, or best.pt was rewritten since (`--resume` of a complete run scores it)."""
    run_dir = Path(run_dir)
    return validated(run_dir) and (run_dir / "best.pt").is_file() and not (run_dir / TEST_FILE).is_file()


def split_sizes(data: LabelledImages) -> str:
    """The images of each split, as the command's first line gives them: "N train / M test images", or with
    validation images held out "N train / M validation images, K test images kept unseen"."""
    if data.unseen_test is None:
        return f"{len(data.train)} train / {len(data.test)} test images"
    return (f"{len(data.train)} train / {len(data.test)} validation images, {len(data.unseen_test)} test images kept "
            "unseen")


def unseen_test_line(result: dict[str, Any], run_dir: str | Path) -> str:
    """The command's last line for a run that kept its test split unseen: best.pt's figure on it (`result`:
    `score_unseen_test`'s), where the figures are written."""
    return (f"test accuracy: {result['top1']:.4f} ({result['checkpoint']} of epoch {result['epoch']}, on the "
            f"{result['images']} test images no epoch was scored on; {Path(run_dir) / TEST_FILE})")


__all__ = ["TEST_FILE", "score_unseen_test", "split_sizes", "unscored", "unseen_test_line", "validated"]
