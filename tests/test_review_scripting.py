"""What a tester driving convolab from scripts found: a `~` in --output made a folder named "~" whose run held no
lock (--data expanded it); the training bar redrew into CI logs."""
from __future__ import annotations

import json

from convolab.cli import main
from convolab.training import TrainConfig


def test_a_leading_tilde_is_the_home_folder_in_every_path_argument(tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress", "--output=~/runs/z"]
    assert main(argv) == 0  # (--output=~/x: a word the shell does not expand)
    assert (home / "runs" / "z" / "last.pt").is_file() and list(cwd.iterdir()) == []
    capsys.readouterr()
    assert main(["evaluate", "~/runs/z", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert files and all(f.startswith(str(home / "runs" / "z")) for f in files)
    assert main(["train", "--resume", "~/runs/z", "--epochs", "2", "--no-progress"]) == 0
    assert list(cwd.iterdir()) == []
    assert TrainConfig(model="lenet5", output="~/elsewhere").output == str(home / "elsewhere")


def test_the_training_bar_is_not_drawn_into_a_file_or_a_ci_log(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="convolab")
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "2", "--output", str(tmp_path / "run")]) == 0
    assert "\r" not in capsys.readouterr().err  # (before: tqdm's redraws, one per 10 steps)
    assert "epoch 2/2  train loss" in caplog.text  # (the epoch lines say it)
