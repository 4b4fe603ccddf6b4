"""What a tester found stopping runs at random moments (about 150 signals, every file and the next command
checked): a fault between a first epoch's best.pt and its last.pt left a folder neither --resume nor the same
command took; signals are named as `kill -l` names them."""
from __future__ import annotations

import signal

import pytest

from convolab._platform import signal_name
from convolab.cli import main
from convolab.training import TrainConfig, Trainer


def test_a_fault_between_the_first_best_pt_and_last_pt_leaves_a_folder_the_same_command_takes(tmp_path,
                                                                                                monkeypatch, capsys):
    run = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress", "--output", str(run)]
    real_save = Trainer.save

    def fail_at_last(self, name):
        if name == "last.pt":
            raise RuntimeError("DataLoader worker (pid 7321) is killed by signal: Terminated.")
        real_save(self, name)

    monkeypatch.setattr(Trainer, "save", fail_at_last)
    with pytest.raises(RuntimeError, match="killed by signal"):
        Trainer(TrainConfig(model="lenet5", data="digits", epochs=1, progress=False, output=str(run))).fit()
    # (before: best.pt, metrics.csv/json, steps.csv and curves.png left without config.json: --resume said "not a
    # run folder", the same command "already holds a run (best.pt, metrics.csv)")
    assert not run.exists() or sorted(p.name for p in run.iterdir()) == []
    monkeypatch.setattr(Trainer, "save", real_save)
    assert main(argv) == 0
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    capsys.readouterr()


@pytest.mark.parametrize("signum, name", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM"), (999, "signal 999")])
def test_signals_are_named_as_kill_l_names_them(signum, name):
    assert signal_name(signum) == name


def test_a_run_started_with_sigint_ignored_keeps_it_ignored(tmp_path):
    """A shell's `cmd &` job and nohup start with SIGINT ignored, as Python keeps it: a Ctrl-C meant for the driver
    script stopped the backgrounded run once it trained (its handler replaced the ignored one)."""
    import os
    import subprocess
    import sys
    import time

    run = tmp_path / "bg"
    proc = subprocess.Popen([sys.executable, "-m", "convolab", "train", "lenet5", "--data", "digits", "--epochs", "3",
                             "--no-progress", "--output", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 300
    while not (run / "metrics.csv").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # (in epoch 2)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and b"stopped by" not in err, err.decode()
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
