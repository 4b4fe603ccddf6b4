"""Faults found in this session's review (resources a command leaves behind, and default folders): each test
fails on the code before its fix."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_review_session import held_by_another_command
from torch import nn

import convolab
from convolab.cli import main
from convolab.errors import ConfigError
from convolab.training import TrainConfig, Trainer, lr_find, rundir
from convolab.training.inference import EvaluationReport, ranked


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


def test_evaluate_counts_a_tie_as_training_does():
    """(before: top-1 took Tensor.topk's first class, which orders ties otherwise than argmax: `convolab evaluate`
    of a bf16 run, whose logits tie, scored 0.8524 where training's own pass of the same logits scored 0.8496)"""
    logits = torch.zeros(2, 6)
    logits[:, 0] = logits[:, 1] = 1.0  # (topk(5) puts class 1 first; argmax, as training counts, class 0)
    report = EvaluationReport.of(logits, torch.tensor([0, 1]), [str(i) for i in range(6)])
    assert report.top1 == 0.5 and report.top5 == 1.0
    assert report.confusion[0, 0] == 1 and report.confusion[1, 0] == 1
    values, indices = ranked(torch.tensor([[1.0, 3.0, 3.0, 0.0, 0.0, 0.0]]), 5)
    assert indices.tolist() == [[1, 2, 0, 3, 4]] and values.tolist() == [[3.0, 3.0, 1.0, 0.0, 0.0]]


def test_lr_find_stopped_while_it_writes_leaves_neither_file_nor_its_folder(tmp_path, monkeypatch):
    """(before: a Ctrl-C or SIGTERM while lr_find.png drew left lr_find.csv alone in a folder the command made)"""
    real = lr_find.lr_find_figure

    def figure_then_ctrl_c(*args, **kwargs):
        fig = real(*args, **kwargs)
        fig.savefig = lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
        return fig

    monkeypatch.setattr(lr_find, "lr_find_figure", figure_then_ctrl_c)
    config = TrainConfig(model="lenet5_modern", data="digits", progress=False)
    with pytest.raises(KeyboardInterrupt):
        lr_find.lr_range_test(config, steps=20, output=tmp_path / "runs" / "lrf", default_stem="lrf")
    assert not (tmp_path / "runs" / "lrf").exists() and not any((tmp_path / "runs").iterdir())
    (tmp_path / "given").mkdir()  # a folder the caller made stays (empty, as given)
    with pytest.raises(KeyboardInterrupt):
        lr_find.lr_range_test(config, steps=20, output=tmp_path / "given")
    assert list((tmp_path / "given").iterdir()) == []


def test_a_warm_up_cut_to_half_the_run_is_said(tmp_path, caplog):
    """(before: --warmup-epochs 1.5 of 2 warmed up over 1 epoch, and nothing said so; config.json records 1.5)"""
    argv = ["train", "lenet5_modern", "--data", "digits", "--epochs", "2", "--no-progress", "--output"]
    assert main([*argv, str(tmp_path / "a"), "--warmup-epochs", "1.5"]) == 0
    said = [r.getMessage() for r in caplog.records if "warm" in r.getMessage()]
    assert said == ["--warmup-epochs 1.5 is over half of the 2 epochs: the warm-up takes 22 steps, 1 epoch"]
    caplog.clear()
    assert main([*argv, str(tmp_path / "b"), "--warmup-epochs", "1"]) == 0
    assert not [r for r in caplog.records if "warm" in r.getMessage()]


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_a_new_run_on_a_run_still_training_is_told_to_wait_not_to_resume(digits_run, tmp_path, capsys):
    """(before: "already holds a run ...; continue it with convolab train --resume", which was then refused: "in use
    by another convolab command")"""
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    with held_by_another_command(run):  # (the run, still training in another command)
        capsys.readouterr()
        assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--output", str(run)]) == 2
        err = capsys.readouterr().err
        assert err == f"convolab train: error: --output {run} is in use by another convolab command; wait for it " \
                      "to end, or choose another folder\n"
        with pytest.raises(ConfigError, match=r"TrainConfig\(output=.*\): .* is in use by another convolab command"):
            Trainer(TrainConfig(model="lenet5_modern", data="digits", output=str(run), progress=False))
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--output", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err  # (the holder gone: as before)


SIGINT_IN_AN_IMPORT = """
import os, signal, sys, time
class CtrlC:  # a real Ctrl-C while a library's module is half made, which then fails otherwise (numpy's
    def find_spec(self, name, path=None, target=None):  # C module, loaded once, refuses a second load)
        if name == {module!r}:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                raise ImportError("cannot load module more than once per process") from None
sys.meta_path.insert(0, CtrlC())
sys.argv = ["/venv/bin/convolab", *{argv!r}]
{code}
"""


@pytest.mark.parametrize("module, argv, code, line", [
    ("convolab.pretrained", [], "import convolab.cli", "convolab: interrupted"),
    ("convolab.cli.train", ["train", "lenet5"], "from convolab.cli import main; main()", "convolab train: interrupted"),
])
def test_a_real_ctrl_c_while_the_command_starts_is_one_line_and_130(module, argv, code, line):
    """(before: the KeyboardInterrupt landed inside the half-made import, and what followed was a traceback: a Ctrl-C
    1 s after `convolab train ...` printed numpy's "ImportError: cannot load module more than once per process")"""
    script = SIGINT_IN_AN_IMPORT.format(module=module, argv=argv, code=code)
    command = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (command.returncode, command.stderr) == (130, line + "\n")


def test_the_default_warm_up_halved_in_a_one_epoch_run_is_not_said(tmp_path, caplog):
    """(the default epoch of warm-up is at most half the run, as documented: no warning on every --epochs 1 run)"""
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress", "--output",
                 str(tmp_path / "a")]) == 0
    assert not [r for r in caplog.records if "warm" in r.getMessage()]
