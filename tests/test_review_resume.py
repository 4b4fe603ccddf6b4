"""Review of resume and run-folder safety: a run folder that turns read-only mid-run, a last.pt damaged or
edited by hand, two commands on one --output at once, and a config.json that no longer agrees with last.pt:
each one line (exit 2), never a traceback or a run that trains something else."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import convolab._atomic as atomic
from convolab.cli import main
from convolab.errors import ConvolabError
from convolab.training import TrainConfig, Trainer
from convolab.training.rundir import forget_unsaved_run, refuse_to_overwrite_a_run

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

LOCK = ".convolab.lock"
TINY = ["--data", "mnist5k", "--train-subset", "256", "--test-subset", "128", "--batch-size", "32",
        "--no-progress", "--threads", "1"]


def tiny(output: Path, **changes) -> TrainConfig:
    values = dict(model="lenet5_modern", data="mnist5k", train_subset=256, test_subset=128, batch_size=32,
                  epochs=1, progress=False, output=str(output))
    return TrainConfig(**(values | changes))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch run (its folder is copied, never changed)."""
    run = tmp_path_factory.mktemp("resume") / "run"
    Trainer(tiny(run)).fit()
    return run


def copy_of(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def resume_line(run: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--threads", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ----- 1. a run folder that turns read-only mid-run ------------------------------------------------------------
def test_a_run_folder_turned_read_only_mid_run_is_one_line_and_the_run_resumes(tmp_path, monkeypatch):
    """(before: `OSError: [Errno 30] Read-only file system` from mkstemp, raised raw: a traceback, exit 1)"""
    run = tmp_path / "run"
    mkstemp = atomic.tempfile.mkstemp

    def read_only_once_saved(*args, **kwargs):
        if (run / "last.pt").exists():
            raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir"))
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only_once_saved)
    with pytest.raises(ConvolabError) as stopped:
        Trainer(tiny(run, epochs=2)).fit()
    line = str(stopped.value)
    assert "\n" not in line and "read-only" in line and f"make {run} writable" in line
    assert "its last.pt of epoch 1 is intact" in line and f"continue with Trainer.resume({str(run)!r}).fit()" in line
    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    assert Trainer.resume(run).fit().history[-1]["epoch"] == 2


def test_a_refused_rename_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    """os.replace refused (EACCES, EPERM, EROFS) in any atomic write: one line naming the file, no temporary left."""
    target = tmp_path / "report.txt"
    target.write_text("before")

    def refused(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", refused)
    with pytest.raises(atomic.RefusedWrite) as refused:  # (the system's OSError, for callers naming their argument)
        atomic.atomic_write(target, lambda tmp: Path(tmp).write_text("after"))
    assert refused.value.errno == errno.EACCES and refused.value.strerror == "Permission denied"
    assert "cannot be written (permission denied) while writing report.txt" in refused.value.line
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["report.txt"]


# ----- 2. a last.pt damaged or edited by hand ------------------------------------------------------------------
def _edit(change):
    def edit(run: Path) -> None:
        state = torch.load(run / "last.pt", weights_only=True)
        change(state)
        torch.save(state, run / "last.pt")
    return edit


DAMAGE = {  # what the tester found crashing `train --resume` (evaluate refused the same files in one line)
    "weight-of-another-shape": _edit(lambda s: s["model"].__setitem__("features.0.weight", torch.zeros(3, 3))),
    "weight-removed": _edit(lambda s: s["model"].pop("features.0.weight")),
    "model-name-changed": _edit(lambda s: s.__setitem__("model_name", "resnet20")),
    "optimizer-removed": _edit(lambda s: s.pop("optimizer")),
    "optimizer-without-groups": _edit(lambda s: s.__setitem__("optimizer", {"state": {}, "param_groups": []})),
    "rng-cpu-of-another-size": _edit(lambda s: s.__setitem__("rng_cpu", torch.zeros(3, dtype=torch.uint8))),
    "history-not-json": _edit(lambda s: s.__setitem__("history", "{not json")),
    "pending-without-correct": _edit(lambda s: s.__setitem__("pending", {"loss": 1.0})),
    "epoch-a-word": _edit(lambda s: s.__setitem__("epoch", "x")),
    "batch-in-epoch-past-the-epoch": _edit(lambda s: s.__setitem__("batch_in_epoch", 500)),
    "epoch-negative": _edit(lambda s: s.__setitem__("epoch", -5)),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_resuming_a_damaged_or_edited_last_pt_is_one_line(finished, tmp_path, capsys, damage):
    """(before: RuntimeError, KeyError, ValueError or JSONDecodeError tracebacks; batch_in_epoch 500 a wrong line
    about unreadable images; epoch -5 trained epochs -4..4 without a word)"""
    run = copy_of(finished, tmp_path)
    DAMAGE[damage](run)
    line = resume_line(run, capsys)
    assert f"{run / 'last.pt'} was altered or damaged (" in line, line
    assert not (run / LOCK).exists()


# ----- 3. two commands on one --output at once -----------------------------------------------------------------
HOLDER = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_folder_in_use_by_another_command_is_refused_and_a_killed_holder_blocks_nothing(finished, tmp_path,
                                                                                           capsys):
    """(before: both commands ran, exit 0, and the folder mixed config.json of one with the checkpoints of the
    other)"""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another convolab command, training there
        capsys.readouterr()
        assert main(["train", "lenet5_modern", *TINY, "--epochs", "1", "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--output {out} is in use by another convolab command; wait for it to end" in err, err
        assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing of the refused run written
        run = copy_of(finished, tmp_path)
        lock = subprocess.Popen([sys.executable, "-c", HOLDER, str(run / LOCK)], stdout=subprocess.PIPE, text=True)
        try:
            assert lock.stdout.readline().strip() == "held"
            assert f"--resume {run} is in use by another convolab command" in resume_line(run, capsys)
        finally:
            lock.kill()
            lock.wait()
    finally:
        holder.kill()  # as SIGKILL leaves it: the lock file stays, the kernel drops the lock
        holder.wait()
    assert (out / LOCK).exists()
    assert main(["train", "lenet5_modern", *TINY, "--epochs", "1", "--output", str(out)]) == 0
    assert not (out / LOCK).exists()  # the run's claim ended with it


def test_a_run_that_ended_in_the_folder_meanwhile_is_not_overwritten(finished, tmp_path):
    """The check before loading the data found the folder empty; a run of the same --output ended there
    meanwhile: the claim checks again (before: the new run overwrote it)."""
    out = tmp_path / "out"
    refuse_to_overwrite_a_run(out)  # what `convolab train --output` checks first
    shutil.copytree(finished, out)  # ... and the other command's run, finished since
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ConvolabError, match=r"already holds a run \(config.json, last.pt"):
        Trainer(tiny(out))
    assert (out / "last.pt").read_bytes() == before and not (out / LOCK).exists()


def test_a_forgotten_run_takes_its_lock_file_with_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / LOCK).write_text("")
    forget_unsaved_run(run)
    assert not run.exists()


# ----- 4. a config.json or a last.pt that are not the same run -------------------------------------------------
@pytest.mark.parametrize("edit", [{"batch_size": 64}, {"seed": 3}, {"model": "resnet20"}, {"optimizer": "sgd"},
                                  {"schedule": "cosine"}, {"train_subset": 200}, {"ema_decay": 0.9}])
def test_a_config_json_edited_by_hand_is_refused_naming_both_files(finished, tmp_path, capsys, edit):
    """(before: each edit applied without a word; another model trained lenet5 but recorded it as resnet20;
    another optimizer a KeyError traceback)"""
    run = copy_of(finished, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | edit))
    line = resume_line(run, capsys)
    assert f"{run / 'config.json'} and {run / 'last.pt'} describe different runs ({next(iter(edit))} " in line, line


def test_a_last_pt_copied_from_another_run_is_refused(finished, tmp_path, capsys):
    """(before: it trained the other run and replaced this folder's best.pt)"""
    other = tmp_path / "other"
    Trainer(tiny(other, seed=7)).fit()
    run = copy_of(finished, tmp_path)
    best = (run / "best.pt").read_bytes()
    shutil.copy(other / "last.pt", run / "last.pt")
    assert "describe different runs (seed 0 there, 7 in the checkpoint)" in resume_line(run, capsys)
    assert (run / "best.pt").read_bytes() == best


def test_a_bad_value_in_config_json_names_the_file_not_a_flag(finished, tmp_path, capsys):
    run = copy_of(finished, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"epochs": "abc"}))
    line = resume_line(run, capsys)
    assert f"error: {run / 'config.json'}: epochs must be an integer, got 'abc'" in line and "--epochs" not in line


def test_a_run_folder_moved_elsewhere_still_resumes(finished, tmp_path, capsys):
    """What the checks must leave alone: config.json and last.pt name the folder the run was made in."""
    run = copy_of(finished, tmp_path)
    start = time.perf_counter()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--threads", "1"]) == 0
    assert time.perf_counter() - start < 60 and not (run / LOCK).exists()
    assert json.loads((run / "config.json").read_text())["output"] == str(run)
    assert os.access(run / "last.pt", os.R_OK)
