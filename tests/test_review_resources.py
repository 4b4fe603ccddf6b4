"""Faults found in this session's review (resources a command leaves behind, and default folders): each test
fails on the code before its fix."""
from __future__ import annotations

from pathlib import Path

from torch import nn

import convolab
from convolab.cli import main
from convolab.training import TrainConfig, Trainer, lr_find, rundir


def test_two_lr_finds_without_output_started_together_each_get_a_folder(tmp_path, monkeypatch, capsys):
    """(before: both wrote runs/lr-find-MODEL-DATA, one curve replacing the other)"""
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "runs" / "lr-find-lenet5_modern-digits"
    real = lr_find._range_test

    def range_test_while_another_takes_the_name(*args, **kwargs):
        taken.mkdir(parents=True)  # the other lr-find, made its folder while this one ran
        return real(*args, **kwargs)

    monkeypatch.setattr(lr_find, "_range_test", range_test_while_another_takes_the_name)
    assert main(["lr-find", "lenet5_modern", "--data", "digits", "--steps", "20", "--no-progress"]) == 0
    assert (tmp_path / "runs" / "lr-find-lenet5_modern-digits-2" / "lr_find.csv").is_file()
    assert not any(taken.iterdir())  # (the other command's, untouched)
    said = capsys.readouterr()
    assert "runs/lr-find-lenet5_modern-digits-2/lr_find" in said.out + said.err


def test_a_default_folder_that_cannot_be_made_is_returned_for_the_callers_line(tmp_path):
    (tmp_path / "file").write_text("")
    assert rundir.take_default_dir(tmp_path / "file" / "d", "d") == tmp_path / "file" / "d"
    made = rundir.take_default_dir(tmp_path / "runs" / "d", "d")
    assert made.is_dir() and rundir.take_default_dir(made, "d") == tmp_path / "runs" / "d-2"
    assert Path(tmp_path / "runs" / "d-2").is_dir()


def test_fit_leaves_each_module_of_a_given_model_in_its_own_mode(tmp_path):
    """(before: fit() left the model in eval mode, its last evaluation's; Lightning's Trainer restores each module's)"""
    model = convolab.create_model("resnet20", num_classes=10, in_chans=1)
    frozen = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][:3]
    for bn in frozen:
        bn.eval()
    config = TrainConfig(model="resnet20", data="digits", epochs=1, image_size=16, progress=False,
                         output=str(tmp_path / "run"), train_subset=64, test_subset=32)
    trainer = Trainer(config, model=model)
    trainer.fit()
    assert model.training and not any(bn.training for bn in frozen)
    assert sum(m.training for m in model.modules()) == sum(1 for _ in model.modules()) - len(frozen)
