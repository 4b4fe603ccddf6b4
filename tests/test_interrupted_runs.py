"""A run killed at any moment (SIGKILL, a crash) leaves a folder that --resume finishes as a run left alone."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from convolab._atomic import WRITER_SPACE
from convolab.cli import main
from convolab.errors import saying
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.loop import resume_command

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py: the same sums in every run)


class Killed(BaseException):
    """What a SIGKILL does to the process, as far as its files go: nothing after it runs."""


def config(tmp_path: Path, name: str) -> TrainConfig:
    return TrainConfig(model="lenet5_modern", data="digits", epochs=2, batch_size=32, progress=False,
                       output=str(tmp_path / name))


def metric_rows(run: Path) -> list[list[str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [[r[k] for k in ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc")]
                for r in csv.DictReader(f)]


def test_a_kill_while_best_pt_is_written_redoes_the_epoch(tmp_path):
    """last.pt is written last at an epoch's end: killed while best.pt or the metrics are written, the run
    resumes from the epoch before and rewrites them (before: last.pt was first, so the run counted as complete
    with the previous epoch's best.pt and metrics, and nothing repaired them)."""
    whole = Trainer(config(tmp_path, "whole")).fit()
    cut = Trainer(config(tmp_path, "cut"))
    save, fired = cut.save, []

    def killed_at_the_last_best(name: str) -> None:
        if name == "best.pt" and cut.state.epoch == 2:
            fired.append(name)
            raise Killed
        save(name)

    cut.save = killed_at_the_last_best
    with pytest.raises(Killed):
        cut.fit()
    assert fired and load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    resumed = Trainer.resume(tmp_path / "cut").fit()
    assert resumed.best_epoch == whole.best_epoch == 2
    assert metric_rows(tmp_path / "cut") == metric_rows(tmp_path / "whole")
    assert load_checkpoint(tmp_path / "cut" / "best.pt")["epoch"] == 2


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path, capsys):
    """Only config.json (a kill or a second Ctrl-C in epoch 1): `--resume`, which the stop message names, trains
    the run from its options (before: "last.pt does not exist", and a new run there was refused); a checkpoint
    half-written by a killed process is removed."""
    Trainer(config(tmp_path, "whole")).fit()
    cut = Trainer(config(tmp_path, "cut"))
    cut.save = lambda name: (_ for _ in ()).throw(Killed)  # killed at the first checkpoint
    with pytest.raises(Killed):
        cut.fit()
    run = tmp_path / "cut"
    half = f".last.pt.{WRITER_SPACE}-999999999.k1ll3d_x.tmp"  # (named after its writer, a process now gone)
    (run / half).write_bytes(b"half a checkpoint")
    assert sorted(p.name for p in run.iterdir()) == [half, "config.json"]
    assert main(["train", "--resume", str(run)]) == 0
    assert "at epoch 1, step 0" in capsys.readouterr().out
    assert metric_rows(run) == metric_rows(tmp_path / "whole")
    assert not (run / half).exists()


@pytest.mark.parametrize("folder, processes, said", [
    ("runs/my run", 1, "convolab train --resume 'runs/my run'"),
    ("runs/r20", 2, "convolab train --resume runs/r20 --nproc 2"),
])
def test_the_resume_command_reads_as_a_shell_takes_it(folder, processes, said):
    """A folder with a space is quoted, and a run of N processes continues with --nproc N (without it, the run
    goes on in one process: a different run); from Python, the call continues it."""
    run = SimpleNamespace(run_dir=Path(folder), dist=SimpleNamespace(enabled=processes > 1, world_size=processes),
                          model=SimpleNamespace(model_name="resnet20"))
    with saying(lambda line: line):  # (a command of the CLI)
        assert resume_command(run) == said
    assert resume_command(run) == f"Trainer.resume({folder!r}).fit()"
