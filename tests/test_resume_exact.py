"""Exact resume where it was not: a streamed run whose model draws dropout masks, and options repeated
on --resume with the value the run resolved from a default."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import history_of, stopped_mid_epoch_and_resumed, write_png_folder

from convolab.cli import main
from convolab.data import load_data
from convolab.training import TrainConfig, Trainer, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    return write_png_folder(tmp_path_factory.mktemp("pngs") / "data", per_class=12, size=20)


def dropout_stream_config(data: Path, output: Path) -> TrainConfig:
    return TrainConfig(model="resnet20", model_options={"drop_rate": 0.5}, data=str(data), loader="stream",
                       workers=0, image_size=16, epochs=2, batch_size=8, progress=False, output=str(output))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["model"]


def test_streamed_loaders_leave_torch_global_random_stream_to_the_model(pngs):
    """A DataLoader draws its workers' base seed at every new iterator; from torch's global stream (dropout's)
    that draw would come at other points in a resumed process than in the run it continues."""
    data = load_data(str(pngs), loader="stream", workers=0).decoded_as(16)
    loader, sampler = data.train_loader(batch_size=8, seed=0)
    before = torch.get_rng_state()
    for epoch in range(2):
        sampler.set_epoch(epoch)
        assert sum(len(labels) for _, labels, _ in data.batches(loader, data.train)) == 32  # 4 whole batches
        assert sum(len(labels) for _, labels, _ in data.eval_batches(data.test, batch_size=8)) == 36
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.slow  # (9 s; a streamed run resumed mid-epoch to the same metrics: test_stream, by default)
def test_streamed_run_with_dropout_resumes_mid_epoch_to_the_same_weights(pngs, tmp_path):
    whole = Trainer(dropout_stream_config(pngs, tmp_path / "whole")).fit().history
    again = Trainer(dropout_stream_config(pngs, tmp_path / "again")).fit().history
    cut = Trainer(dropout_stream_config(pngs, tmp_path / "cut"))
    assert cut.streaming
    resumed = stopped_mid_epoch_and_resumed(cut, cut.steps_per_epoch + 2)  # in the middle of epoch 2
    assert history_of(again) == history_of(whole)  # deterministic
    assert resumed == history_of(whole)
    for name, tensor in weights(tmp_path / "whole").items():
        assert torch.equal(weights(tmp_path / "cut")[name], tensor), name


@pytest.fixture(scope="module")
def lenet5_run(tmp_path_factory) -> Path:
    """lenet5 trained for one epoch on its defaults: lr null in config.json, 0.01 (the model's) resolved."""
    run = tmp_path_factory.mktemp("lenet5") / "run"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress", "--output", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] is None and config["resolved"]["lr"] == 0.01
    return run


@pytest.mark.parametrize("repeated", [["--lr", "0.01"], ["--image-size", "28"],
                                      ["--aux-weight", "0"], ["--loss", "main=1"]])
def test_resume_takes_a_defaulted_option_repeated_with_the_value_the_run_used(lenet5_run, tmp_path, repeated,
                                                                              capsys):
    run = shutil.copytree(lenet5_run, tmp_path / "run")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", *repeated]) == 0
    out = capsys.readouterr().out
    assert "changed: --epochs 1 -> 2\n" in out and out.rstrip().splitlines()[-1].startswith("test accuracy: ")
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 2 and config["lr"] is None and config["image_size"] is None  # still the defaults


@pytest.mark.parametrize("changed, flag", [(["--lr", "0.02"], "--lr"), (["--image-size", "32"], "--image-size"),
                                           (["--amp", "bf16"], "--amp"), (["--aux-weight", "0.3"], "--aux-weight"),
                                           (["--loss", "main=2"], "--loss")])
def test_resume_still_refuses_a_defaulted_option_given_another_value(lenet5_run, changed, flag, capsys):
    before = (lenet5_run / "last.pt").read_bytes()
    assert main(["train", "--resume", str(lenet5_run), "--epochs", "2", *changed]) == 2
    err = capsys.readouterr().err
    assert f"{flag} cannot change when a run is resumed" in err and len(err.strip().splitlines()) == 1
    assert (lenet5_run / "last.pt").read_bytes() == before


def test_resume_takes_the_init_from_checkpoint_written_another_way(lenet5_run, tmp_path, capsys):
    """The same --init-from file spelled another way is no change (as --data is); another file still is."""
    run = tmp_path / "ft"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress", "--init-from",
                 str(lenet5_run / "best.pt"), "--output", str(run)]) == 0
    respelled = str(lenet5_run / ".." / lenet5_run.name / "best.pt")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--init-from", respelled]) == 0
    assert "changed: --epochs 1 -> 2\n" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "3", "--init-from", str(run / "best.pt")]) == 2
    assert "--init-from cannot change when a run is resumed" in capsys.readouterr().err
