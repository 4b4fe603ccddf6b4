"""`--pretrained` / `--weights` on the verbs that build MODEL: train, compare, lr-find and draw. Offline: the
weights are random tensors saved in a temporary torch hub cache under the file names torchvision expects
(CONVOLAB_OFFLINE=1, as tests/test_pretrained.py seeds them); small inputs, few images, one epoch."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

import convolab
from convolab.cli import main
from convolab.finetune import pretrained_defaults
from convolab.pretrained import choose_weights
from convolab.training import TrainConfig, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

SMALL = ["--data", "digits", "--epochs", "1", "--image-size", "32", "--train-subset", "48", "--test-subset", "24",
         "--batch-size", "16", "--no-progress", "--threads", "1"]


@pytest.fixture
def cache(offline_caches) -> Path:
    """An empty torch hub cache and Hugging Face home in tmp_path (conftest's offline_caches)."""
    return offline_caches


def seed(cache: Path, name: str) -> Path:
    """Random torchvision weights of `name` where torch.hub looks for its default weights."""
    torch.manual_seed(1)
    peer = getattr(torchvision.models, name)(weights=None)
    file = cache / "torch" / "hub" / "checkpoints" / os.path.basename(choose_weights(name, True).handle.url)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(peer.state_dict(), file)
    return file


def test_train_pretrained_trains_the_weights_under_a_new_head_and_resumes_without_them(cache, capsys):
    file = seed(cache, "resnet18")
    run = cache / "run"
    assert main(["train", "resnet18", "--pretrained", "--freeze-backbone", "--output", str(run), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "training resnet18 from torchvision:resnet18.IMAGENET1K_V1 on digits" in out and "test accuracy:" in out
    config = json.loads((run / "config.json").read_text())
    assert config["init_from"] == "torchvision:resnet18.IMAGENET1K_V1" and config["normalize"] == "model"
    assert config["backbone_lr_scale"] is None  # (every layer at the run's rate, as timm's train.py --pretrained)
    weights = convolab.create_model("resnet18", pretrained=True).state_dict()
    trained = load_checkpoint(run / "last.pt")
    backbone = [k for k in weights if not k.startswith("head.") and weights[k].is_floating_point()]
    assert backbone and all(torch.equal(trained["model"][k], weights[k]) for k in backbone)  # (frozen: as loaded)
    assert trained["model"]["head.fc.weight"].shape == (10, 512)  # a new head for the digits' classes

    file.unlink()  # --resume reads last.pt: the weights are not fetched again
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "resuming resnet18" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


def test_train_pretrained_takes_the_weights_input_size_and_the_given_options_win():
    config = pretrained_defaults(TrainConfig(model="resnet18", data="digits"), set(), whole=True)
    assert config.normalize == "model" and config.backbone_lr_scale is None
    assert pretrained_defaults(TrainConfig(model="resnet18", normalize="data"), {"normalize"},
                               whole=True).normalize == "data"
    assert pretrained_defaults(TrainConfig(model=""), set()).backbone_lr_scale == 0.1  # (finetune's, unchanged)


@pytest.mark.slow  # (20 s: resnet18 and resnet34 trained, one twice; their start is train --pretrained's, above)
def test_compare_pretrained_starts_each_run_from_its_weights_and_resume_trains_the_rest_from_them(cache, capsys):
    seed(cache, "resnet18")
    seed(cache, "resnet34")
    out = cache / "cmp"
    assert main(["compare", "resnet18", "resnet34", "--pretrained", "--output", str(out), *SMALL]) == 0
    capsys.readouterr()
    record = json.loads((out / "compare.json").read_text())
    assert record["pretrained"] is True and record["statuses"] == {"resnet18": "ok", "resnet34": "ok"}
    for model in ("resnet18", "resnet34"):
        config = json.loads((out / "runs" / model / "config.json").read_text())
        assert config["init_from"] == f"torchvision:{model}.IMAGENET1K_V1" and config["normalize"] == "model"
    first = load_checkpoint(out / "runs" / "resnet34" / "last.pt")["model"]

    # a run the comparison has still to train (removed here) trains from its weights on --resume, as it did
    shutil.rmtree(out / "runs" / "resnet34")
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    config = json.loads((out / "runs" / "resnet34" / "config.json").read_text())
    assert config["init_from"] == "torchvision:resnet34.IMAGENET1K_V1"
    again = load_checkpoint(out / "runs" / "resnet34" / "last.pt")["model"]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_compare_refuses_a_model_without_weights_before_anything_is_written(cache, capsys):
    assert main(["compare", "resnet18", "lenet5", "--pretrained", "--data", "digits",
                 "--output", str(cache / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "lenet5 has no published weights to start from (`convolab models`" in err
    assert not (cache / "cmp").exists()


def test_lr_find_pretrained_tests_the_run_train_would_start(cache, capsys):
    seed(cache, "resnet18")
    out = cache / "lr"
    assert main(["lr-find", "resnet18", "--pretrained", "--steps", "30", "--end-lr", "1", "--output", str(out),
                 *SMALL[:2], *SMALL[4:], "--train-subset", "128"]) == 0
    assert "lr-find resnet18 from torchvision:resnet18.IMAGENET1K_V1 on digits" in capsys.readouterr().out
    assert (out / "lr_find.csv").is_file()


def test_draw_pretrained_draws_the_model_as_its_weights_build_it(tmp_path, capsys):
    # (resnet18's weights take its own options and input size: the same drawing; no weights are read)
    assert main(["draw", "resnet18", "--pretrained", "--out", str(tmp_path / "w.svg")]) == 0
    assert main(["draw", "resnet18", "--out", str(tmp_path / "m.svg")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "w.svg").read_text() == (tmp_path / "m.svg").read_text()
    assert main(["draw", "resnet18", "--pretrained", "--in-chans", "1", "--out", str(tmp_path / "g.svg")]) == 2
    assert "--in-chans 1 does not fit --pretrained" in capsys.readouterr().err
    assert main(["draw", "lenet5", "--weights", "timm", "--out", str(tmp_path / "l.svg")]) == 2
    assert "lenet5 has no published weights" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists() and not (tmp_path / "l.svg").exists()
