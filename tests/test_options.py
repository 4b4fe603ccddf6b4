"""TrainConfig as the one source of the training options: the generated CLI, the one check of every
value, errors that name the field from Python and the flag from the CLI, and `--resume` with options."""
from __future__ import annotations

import argparse
import json
import shutil

import pytest
from PIL import Image

from convolab.cli import build_parser, main
from convolab.errors import FieldError
from convolab.training import TrainConfig
from convolab.training.config import FIELDS, resumable_options
from convolab.training.metrics import read_metrics, read_steps
from convolab.training.optim import build_optimizer, lr_factor


def verb_parser(verb: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[verb]


@pytest.mark.parametrize("verb, skipped", [("train", set()), ("compare", {"init_from", "sync_bn"}),
                                           ("finetune", {"init_from", "sync_bn", "model_options"})])
def test_every_training_option_is_generated_from_its_field(verb, skipped):
    dests = {a.dest: a for a in verb_parser(verb)._actions}
    for name, f in FIELDS.items():
        if f.metadata["cli"] and name not in skipped:
            assert name in dests, f"{verb} has no option for TrainConfig.{name}"
            assert dests[name].help and f.metadata["help"].split()[0] in dests[name].help


def test_a_library_error_names_the_field():
    with pytest.raises(FieldError, match=r"^epochs must be a positive integer, got 0$"):
        TrainConfig(model="lenet5", epochs=0)
    with pytest.raises(FieldError, match=r"^ema_decay must be a number in \(0, 1\), got 2$"):
        TrainConfig(model="lenet5", ema_decay=2)
    with pytest.raises(FieldError, match=r"^batch_size must be an integer, got 2.5$"):
        TrainConfig(model="lenet5", batch_size=2.5)


def test_numpy_numbers_are_taken_as_python_ones_and_min_delta_is_in_the_monitors_units():
    import numpy as np

    config = TrainConfig(model="lenet5", seed=np.int64(3), epochs=np.int32(2), lr=np.float32(0.5),
                         label_smoothing=np.float64(0.1), ema_decay=np.float16(0.5))
    assert (config.seed, config.epochs, config.lr, config.ema_decay) == (3, 2, 0.5, 0.5)
    assert type(config.seed) is int and type(config.lr) is float and json.loads(json.dumps(config.to_dict()))
    with pytest.raises(FieldError, match=r"^batch_size must be an integer, got (np.float32\(2.5\)|2.5)$"):
        TrainConfig(model="lenet5", batch_size=np.float32(2.5))
    assert TrainConfig(model="lenet5", monitor="test_loss", min_delta=2.0).min_delta == 2.0  # a loss, or MAE in years


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--batch-size", "32",
                 "--no-progress", "--output", str(run)]) == 0
    return run


@pytest.mark.parametrize("extra, message", [
    (["--lr", "0.5"], "--lr cannot change when a run is resumed"),
    (["--batch-size", "16"], "--batch-size cannot change when a run is resumed"),
    (["--data", "mnist5k"], "--data cannot change when a run is resumed"),
    (["--output", "elsewhere"], "--output cannot change when a run is resumed"),
    (["--recipe", "fast"], "--recipe cannot change when a run is resumed"),
    ([], "--epochs is 1 and"),  # a finished run says so: nothing to resume
    (["--epochs", "1"], "the run is complete; give --epochs N with N > 1"),
])
def test_resume_refuses_options_that_cannot_change_in_one_line(one_epoch_run, capsys, extra, message):
    before = (one_epoch_run / "metrics.csv").read_text(), (one_epoch_run / "last.pt").read_bytes()
    code = main(["train", "--resume", str(one_epoch_run), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert ((one_epoch_run / "metrics.csv").read_text(), (one_epoch_run / "last.pt").read_bytes()) == before


def test_resume_takes_the_runs_own_values_repeated_and_its_folder_moved(tmp_path, capsys, monkeypatch):
    """Repeating an option as the run has it is no change: the data (a folder written relative or absolute),
    the batch, and as --output the run folder itself, also after the folder was copied elsewhere."""
    folder = tmp_path / "dig folder"
    for i, (cls, value) in enumerate([("a", 40), ("b", 200)] * 12):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        Image.new("L", (28, 28), value + i).save(folder / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet5_modern", "--data", "dig folder", "--epochs", "1", "--batch-size", "8",
                 "--no-progress", "--output", "run"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(folder)  # absolute
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # evaluate and resume from another folder find the data
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--data", str(folder), "--batch-size", "8",
                 "--output", str(tmp_path / "run"), "--epochs", "2", "--no-progress"]) == 0
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    assert main(["train", "--resume", "../copy", "--output", "../copy", "--data", "../dig folder", "--epochs", "3",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "changed: --epochs 1 -> 2" in out and "changed: --epochs 2 -> 3" in out, out
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["epochs"] == 3


def test_resume_with_a_model_name_is_refused(one_epoch_run, capsys):
    assert main(["train", "lenet5", "--resume", str(one_epoch_run)]) == 2
    assert "leave out MODEL (lenet5)" in capsys.readouterr().err


def test_resume_extends_epochs_on_the_schedule_of_the_longer_run(tmp_path, capsys):
    common = ["--data", "digits", "--batch-size", "32", "--no-progress"]
    run, whole = tmp_path / "run", tmp_path / "whole"
    assert main(["train", "lenet5_modern", "--epochs", "1", *common, "--output", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "3", "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "changed: --epochs 1 -> 3, --threads None -> 1" in out
    shown = tmp_path / "shown"  # a run that showed its progress bar, resumed without it
    assert main(["train", "lenet5_modern", "--epochs", "1", "--data", "digits", "--batch-size", "32", "--output",
                 str(shown)]) == 0
    assert main(["train", "--resume", str(shown), "--epochs", "2", "--no-progress"]) == 0
    assert "changed: --epochs 1 -> 2, --no-progress False -> True" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 3 and config["threads"] == 1  # the changes are recorded
    assert len(read_metrics(run)) == 3
    # From the step it stopped at, the learning rate is that of a run of 3 epochs at the same step.
    assert main(["train", "lenet5_modern", "--epochs", "3", *common, "--output", str(whole)]) == 0
    spe = config["resolved"]["steps_per_epoch"]
    later = [(r["step"], r["lr"]) for r in read_steps(run) if r["step"] > spe]
    assert later == [(r["step"], r["lr"]) for r in read_steps(whole) if r["step"] > spe]
    base, total = config["resolved"]["lr"], 3 * spe
    warmup = min(round(1.0 * spe), total // 2)
    step, lr = later[-1]  # (a row's lr is the one its last step trained at: step - 1, 0-based)
    assert lr == pytest.approx(base * lr_factor(int(step) - 1, total, "onecycle", warmup))


def test_the_options_a_resumed_run_takes_are_declared_on_their_fields():
    assert set(resumable_options()) == {"data_dir", "workers", "epochs", "patience", "min_delta", "budget_seconds",
                                        "device", "compile", "compile_mode", "threads", "tensorboard", "progress",
                                        "memory_check", "grad_checkpointing"}
    config = TrainConfig(model="lenet5", epochs=2)
    assert config.resumed_with({"epochs": 5, "device": "cpu"}).epochs == 5
    assert config.resumed_with({"lr": None}).lr is None  # the value it has: no change
    with pytest.raises(FieldError, match="^lr cannot change when a run is resumed"):
        config.resumed_with({"lr": 0.1})


def test_momentum_is_adams_beta1_and_nesterov_elsewhere_is_said_to_be_ignored(caplog):
    import torch

    groups = lambda: [{"params": [torch.nn.Parameter(torch.zeros(2))]}]  # noqa: E731
    for name in ("adam", "adamw"):
        assert build_optimizer(groups(), name, 1e-3, momentum=0.5).param_groups[0]["betas"] == (0.5, 0.999)
        assert build_optimizer(groups(), name, 1e-3).param_groups[0]["betas"] == (0.9, 0.999)  # PyTorch's default
    assert "--nesterov" not in caplog.text
    build_optimizer(groups(), "sgd", 0.1, momentum=0.9, nesterov=True)
    assert "--nesterov" not in caplog.text
    build_optimizer(groups(), "adamw", 1e-3, nesterov=True)
    assert "`nesterov` is ignored: it is Nesterov momentum of sgd with `momentum` above 0 (here adamw" in caplog.text


def test_a_run_stopped_early_resumes_to_nothing_unless_patience_is_raised(tmp_path):
    from convolab.training import Trainer

    run = tmp_path / "run"
    first = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=5, patience=1, min_delta=0.5,
                                output=str(run), progress=False)).fit()
    assert first.stopped_early and len(first.history) == 2  # epoch 2 gains less than 0.5
    again = Trainer.resume(run).fit()
    assert again.stopped_early and again.history == first.history
    longer = Trainer.resume(run, patience=2).fit()
    assert len(longer.history) == 3
