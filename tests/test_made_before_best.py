"""A resumed run whose best.pt is newer than the exports and evaluation beside it says they describe an earlier one."""
from __future__ import annotations

import logging
import os

import pytest

from convolab.cli import main
from convolab.training import TrainConfig, Trainer
from convolab.training.derived import made_before_best

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def test_a_resumed_run_names_the_exports_made_from_an_earlier_best_pt(tmp_path, caplog):
    """(before: `train --resume` replaced best.pt and left best.torchscript.pt and evaluation/ scoring the earlier one
    without a word)"""
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=64, progress=False,
                        output=str(run))).fit()
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    assert main(["evaluate", str(run)]) == 0
    assert made_before_best(run) == []  # (made after it)
    for name in ("best.torchscript.pt", "evaluation"):
        os.utime(run / name, (0, 0))  # (as made before the best.pt that training further writes)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        Trainer.resume(run, epochs=2).fit()
    assert f"best.torchscript.pt, evaluation in {run} were made from an earlier best.pt than the run now has: " \
           "export and evaluate the run again" in caplog.text
    for name in ("best.onnx-evaluation", "best-safetensors.onnx"):  # (evaluate's of an export, ONNX of the folder)
        (run / name).mkdir() if name.endswith("evaluation") else (run / name).write_bytes(b"")
        os.utime(run / name, (0, 0))
    assert {"best.onnx-evaluation", "best-safetensors.onnx"} <= set(made_before_best(run))
    for name in ("best.onnx-evaluation", "best-safetensors.onnx"):
        os.utime(run / name)  # (made now, after best.pt)
    caplog.clear()
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    assert main(["evaluate", str(run)]) == 0
    with caplog.at_level(logging.WARNING, logger="convolab"):
        Trainer.resume(run, epochs=3).fit()
    assert ("made from an earlier best.pt" in caplog.text) == (made_before_best(run) != [])
