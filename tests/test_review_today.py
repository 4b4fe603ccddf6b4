"""Today's review of run folders and resumes: a second `compare --resume` leaves the folder a live command holds;
`Trainer.resume(model=...)` takes only the registered model last.pt records; an own-model run stopped before its
first checkpoint is not resumed as config.model."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from convolab import create_model
from convolab.cli import main
from convolab.errors import CheckpointError, ConfigError
from convolab.training import TrainConfig, Trainer
from convolab.training.rundir import LOCK_FILE

QUICK = ["--data", "digits", "--batch-size", "128", "--no-progress", "--epochs", "1", "--model-option", "img_size=12"]


def small(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def config(run: Path, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": "digits", "epochs": 1, "batch_size": 256, "progress": False,
                          "output": str(run), **changes})


def stopped_before_its_first_checkpoint(run: Path) -> None:
    for name in ("best.pt", "last.pt"):
        (run / name).unlink()  # as a kill before the first epoch ended leaves it: config.json and nothing to resume


def status_of(out: Path, name: str) -> str:
    return json.loads((out / "compare.json").read_text())["statuses"][name]


def test_compare_resume_leaves_alone_a_run_folder_another_command_holds(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "lenet5_modern", *QUICK, "--output", str(out)]) == 0
    run = out / "runs" / "lenet5_modern"
    stopped_before_its_first_checkpoint(run)
    state = json.loads((out / "compare.json").read_text())
    state["statuses"].pop("lenet5_modern")  # (killed before its status was saved: trained afresh on --resume)
    (out / "compare.json").write_text(json.dumps(state))
    # another command's claim, as a second `compare --resume` of the same folder holds it while it trains there
    fd = os.open(run / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (run / "stopped.json").write_text("a file of the live run")
        assert main(["compare", "--resume", str(out)]) == 1  # one line, as before the folder was cleared
        assert status_of(out, "lenet5_modern").startswith(f"failed: --output {run} is in use by another convolab "
                                                          "command")
        assert (run / "stopped.json").is_file() and (run / "config.json").is_file()  # nothing of the live run removed
        assert os.stat(run / LOCK_FILE).st_ino == os.fstat(fd).st_ino  # its lock is the one the holder locked
    finally:
        os.close(fd)  # (the holder ends)
    assert main(["compare", "--resume", str(out)]) == 0  # now its own failed attempt's folder is cleared and trained
    assert status_of(out, "lenet5_modern") == "ok" and (run / "last.pt").is_file()
    assert not (run / "stopped.json").exists() and not (run / LOCK_FILE).exists()


def test_resume_refuses_another_registered_model_whose_weights_have_the_same_shapes(tmp_path):
    run = tmp_path / "run"
    Trainer(config(run)).fit()
    modern = create_model("lenet5_modern", num_classes=10, in_chans=1)  # ReLU and max pooling: lenet5's shapes
    with pytest.raises(CheckpointError) as refused:
        Trainer.resume(run, model=modern, epochs=2)
    line = str(refused.value)
    assert "\n" not in line and "lenet5_modern" in line and "(given: lenet5_modern; its last.pt records lenet5)" in line
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["model_name"] == "lenet5" and state["epoch"] == 1  # untouched; the claim was let go:
    Trainer.resume(run, model=create_model("lenet5", num_classes=10, in_chans=1), epochs=2).fit()  # its own model
    assert torch.load(run / "last.pt", weights_only=False)["model_name"] == "lenet5"
    plain = create_model("lenet5", num_classes=10, in_chans=1)
    plain.model_name = ""  # a model of no registered name is known by its weights' shapes, as before
    Trainer.resume(run, model=plain, epochs=3).fit()


def test_an_own_model_run_stopped_before_its_first_checkpoint_is_not_resumed_as_config_model(tmp_path, capsys):
    run = tmp_path / "own"
    Trainer(config(run), model=small()).fit()
    stopped_before_its_first_checkpoint(run)
    assert json.loads((run / "config.json").read_text())["own_model"] is True
    assert TrainConfig.from_run(run).model == "lenet5"  # (the extra key is no option: read as before)
    with pytest.raises(ConfigError) as refused:
        Trainer.resume(run)
    line = str(refused.value)
    assert "\n" not in line and f"continue it with Trainer.resume({str(run)!r}, model=...)" in line
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model=..." in err and "no registered name" in err
    assert not (run / "last.pt").exists()  # nothing trained in its place
    Trainer.resume(run, model=small()).fit()  # with its model it trains from the start
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["model_name"] == "" and json.loads((run / "config.json").read_text())["own_model"] is True
    Trainer.resume(run, model=small(), epochs=2).fit()  # config.json and last.pt still agree


def test_a_given_model_of_the_configs_own_registered_name_resumes_with_nothing_more(tmp_path):
    run = tmp_path / "given"
    Trainer(config(run), model=create_model("lenet5", num_classes=10, in_chans=1)).fit()
    assert "own_model" not in json.loads((run / "config.json").read_text())
    stopped_before_its_first_checkpoint(run)
    Trainer.resume(run).fit()
    assert torch.load(run / "last.pt", weights_only=False)["model_name"] == "lenet5"
