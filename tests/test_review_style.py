"""The training half's boundaries (a review against STYLE.md): what a Python user extending or driving a Trainer
meets. Each test failed before its fix."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import write_png_folder
from torch import nn

from convolab.training import TrainConfig, Trainer
from convolab.training.loop import train_step


class Wrapper(nn.Module):
    """A model of the user's own whose backbone is an attribute named `module`, as many wrappers name theirs."""

    def __init__(self):
        super().__init__()
        self.module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.module(x))


def _config(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": "digits", "epochs": 1, "progress": False, "normalize": "none",
                          "output": str(tmp_path / "run"), **kw})


def test_a_model_holding_a_submodule_named_module_is_saved_and_resumed_whole(tmp_path):
    # (before: the checkpoint took `model.module` for a DDP wrapper's, and saved the backbone alone: the head's
    # weights were lost, and a resume loaded the backbone into the submodule)
    trainer = Trainer(_config(tmp_path), model=Wrapper())
    trainer.fit()
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert sorted(saved) == sorted(Wrapper().state_dict())
    assert torch.equal(saved["head.weight"], trainer.model.head.weight.detach().cpu())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["own_model"] is True
    resumed = Trainer.resume(tmp_path / "run", model=Wrapper(), epochs=2)
    assert torch.equal(resumed.model.head.weight.detach().cpu(), saved["head.weight"])
    assert len(resumed.fit().history) == 2


def test_a_registered_model_does_not_record_itself_as_the_users_own(tmp_path):
    Trainer(_config(tmp_path)).fit()
    assert "own_model" not in json.loads((tmp_path / "run" / "config.json").read_text())


def test_a_run_part_cannot_be_replaced_on_the_trainer(tmp_path):
    # (before: trainer.model = other was taken, while the optimizer, the EMA and the forward model kept the old one)
    trainer = Trainer(_config(tmp_path))
    with pytest.raises(AttributeError, match="build a new Trainer"):
        trainer.model = Wrapper()
    with pytest.raises(AttributeError, match="build a new Trainer"):
        trainer.optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    trainer.best_acc = 0.5  # (progress is the run state's, and stays writable through the trainer)
    assert trainer.state.best_acc == 0.5


def test_a_subclass_changes_the_step_through_the_public_train_step(tmp_path):
    calls = []

    class Counting(Trainer):
        def train_step(self, x, y, targets=None, mix=None, micro=0):
            calls.append(len(y))
            return train_step(self.run, x, y, targets, mix, micro)

    result = Counting(_config(tmp_path, batch_size=128)).fit()
    assert calls and sum(calls) == result.history[0]["step"] * 128


def test_trainer_resume_takes_the_runs_own_values_as_the_command_does(tmp_path):
    # (before: only `convolab train --resume` left out what names the run's own value; Trainer.resume refused
    # the input size the run resolved as a change it cannot take)
    digits_dir = write_png_folder(tmp_path / "pngs", per_class=8, size=12)
    Trainer(_config(tmp_path, model="lenet5_modern", data=str(digits_dir), epochs=1, batch_size=8)).fit()
    lr = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["lr"]
    resumed = Trainer.resume(tmp_path / "run", image_size=28, lr=lr, output=str(tmp_path / "run" / "."), epochs=2)
    assert resumed.config.epochs == 2 and len(resumed.fit().history) == 2
    again = Trainer.resume(tmp_path / "run", output=tmp_path / "run", epochs=3)  # (the folder as a Path: no change)
    assert again.config.output == str(tmp_path / "run")
    with pytest.raises(Exception, match="image_size"):  # (a real change is still refused)
        Trainer.resume(tmp_path / "run", image_size=32)
