"""A model given to `Trainer(config, model=...)` in place of the one `config.model` names: it trains at its own
registered rate (not config.model's), its checkpoint records its own name (not config.model's), and a run of a
model the `convolab` command does not know is told how to continue in Python, not with a command that fails."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from convolab import _registry, create_model, register_model
from convolab.errors import saying
from convolab.export import model_from_checkpoint
from convolab.training import TrainConfig, Trainer
from convolab.training.loop import resume_command
from convolab.training.optim import DEFAULT_LR

ADAMW = DEFAULT_LR[TrainConfig("lenet5").optimizer]  # the optimizer's default rate


pytestmark = pytest.mark.usefixtures("fresh_registry")  # (tests/conftest.py)


def small(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def config(tmp_path: Path, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": "digits", "epochs": 1, "batch_size": 256, "progress": False,
                          "output": str(tmp_path / "run"), **changes})


def test_a_given_model_trains_at_its_own_rate_not_at_the_rate_config_model_registers(tmp_path):
    assert _registry.train_defaults("lenet5")["lr"] != ADAMW
    plain = Trainer(config(tmp_path), model=small())
    assert plain.run.config.base_lr == ADAMW

    @register_model(train_defaults={"lr": 0.007})
    def given_tuned(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
        return small(num_classes, in_chans)

    tuned = Trainer(config(tmp_path, output=str(tmp_path / "tuned")), model=create_model("given_tuned"))
    assert tuned.run.config.base_lr == 0.007
    chosen = Trainer(config(tmp_path, output=str(tmp_path / "chosen"), lr=0.02), model=small())
    assert chosen.run.config.base_lr == 0.02
    own = Trainer(config(tmp_path, output=str(tmp_path / "own")), model=create_model("lenet5"))
    assert own.run.config.lr is None  # (the model config.model names: nothing to change, nothing recorded)


def test_a_plain_given_model_is_saved_of_no_name_and_told_how_to_continue(tmp_path):
    trainer = Trainer(config(tmp_path), model=small())
    trainer.fit()
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["model_name"] == ""  # not lenet5's: loading it as lenet5 would fail on every weight
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == ADAMW
    assert resume_command(trainer.run).startswith(f"Trainer.resume({str(tmp_path / 'run')!r}, model=...).fit()")


def test_a_run_of_a_model_registered_in_python_is_continued_in_python():
    @register_model
    def given_own(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
        return small(num_classes, in_chans)

    run = SimpleNamespace(run_dir=Path("runs/own"), dist=SimpleNamespace(enabled=False, world_size=1),
                          model=create_model("given_own"))
    assert resume_command(run) == ("Trainer.resume('runs/own').fit() in Python, with the module registering "
                                   "given_own imported")
    run.model = create_model("lenet")  # (an alias's model: convolab's own)
    with saying(lambda line: line):
        assert resume_command(run) == "convolab train --resume runs/own"


def test_a_given_registered_model_is_recorded_as_the_runs_model(tmp_path):
    trainer = Trainer(config(tmp_path), model=create_model("resnet20", in_chans=1))
    assert trainer.run.config.model == "resnet20" and trainer.run.config.base_lr == ADAMW
    assert Trainer(config(tmp_path, output=str(tmp_path / "alias")), model=create_model("lenet")).run.config.model \
        == "lenet5"  # (lenet is lenet5: nothing to change)
    plain = Trainer(config(tmp_path, output=str(tmp_path / "plain")), model=small())
    assert plain.run.config.model == "lenet5"  # (no registered name to record: config.model stays)


def test_a_given_model_built_with_options_is_saved_with_them_and_loads_again(tmp_path):
    given = create_model("lenet5_modern", num_classes=10, in_chans=1, img_size=16)  # (digits are 8x8: 16 px)
    assert given.model_options == {"img_size": 16}
    Trainer(config(tmp_path, image_size=16), model=given).fit()
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model_options"] == {"img_size": 16}
    model, _ = model_from_checkpoint(run)  # rebuilt as it was given, not at lenet5_modern's default 28 px
    assert model.model_options == {"img_size": 16}
    torch.testing.assert_close(model.state_dict(), torch.load(run / "last.pt", weights_only=True)["model"])


def test_a_given_cut_model_of_the_configs_own_name_is_recorded_cut_and_loads_again(tmp_path):
    given = create_model("lenet5_modern", num_classes=10, in_chans=1, img_size=16, until="features")
    assert given.model_options == {"img_size": 16, "until": "features"}
    Trainer(config(tmp_path, model="lenet5_modern", image_size=16), model=given).fit()
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model_options"] == {"img_size": 16, "until": "features"}
    model, _ = model_from_checkpoint(run)  # (it was rebuilt uncut: head.fc 10x84 against the checkpoint's 10x16)
    torch.testing.assert_close(model.state_dict(), torch.load(run / "last.pt", weights_only=True)["model"])
