"""Several outputs: a two-head model (digit and parity) trained from the CLI, per-output loss
weights and metrics, derived targets, and GoogLeNet's auxiliary heads through the same path."""
from __future__ import annotations

import csv

import pytest
import torch

from convolab import create_model
from convolab.cli import main
from convolab.data import load_data
from convolab.errors import ConfigError, DataError
from convolab.finetune import derive_target
from convolab.training import TrainConfig, Trainer
from convolab.training.loop import weighted_loss


def test_two_head_lenet_learns_digit_and_parity_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "lenet5_two_head", "--data", "mnist5k", "--epochs", "2", "--extra-target", "parity",
                 "--loss", "main=1.0,parity=0.5", "--output", str(out), "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert "test_acc_parity" in rows[0] and len(rows) == 2
    digit, parity = float(rows[-1]["test_acc"]), float(rows[-1]["test_acc_parity"])
    assert digit > 0.8 and parity > 0.8, (digit, parity)  # chance: 0.1 and 0.5
    assert capsys.readouterr().out.strip().endswith(f"test accuracy: {digit:.4f}")
    # An ONNX or TorchScript export is the main output's graph: it says so, naming the head it leaves out
    assert main(["export", str(out), "--format", "torchscript"]) == 0
    assert "not exported: the model's other head parity; the torchscript model gives the main output alone " \
           "(--format safetensors keeps every head)" in capsys.readouterr().out


def test_two_head_outputs_share_the_backbone_and_the_main_output_is_the_plain_call():
    model = create_model("lenet5_two_head").eval()
    x = torch.randn(3, 1, 28, 28)
    outputs = model.forward_outputs(x)
    assert set(outputs) == {"main", "parity"} and outputs["parity"].shape == (3, 2)
    assert torch.equal(outputs["main"], model(x))
    generic = create_model("multitask", backbone="resnet20", in_chans=3, tasks={"vehicle": 2})
    assert generic.aux_names == ("vehicle",) and generic.vehicle.in_features == 64


def test_loss_is_the_weighted_sum_of_each_output_against_its_own_target(tmp_path):
    digits = load_data("digits")
    config = TrainConfig(model="lenet5_two_head", data="digits", output=str(tmp_path / "run"), progress=False,
                         extra_targets=["parity"], loss_weights={"parity": 0.25})
    trainer = Trainer(config, data=digits)
    assert trainer.loss_weights == {"main": 1.0, "parity": 0.25} and trainer.want_aux
    outputs = {"main": torch.randn(4, 10), "parity": torch.randn(4, 2)}
    y = torch.tensor([1, 2, 3, 4])
    targets = {"parity": y % 2}
    expected = (torch.nn.functional.cross_entropy(outputs["main"], y)
                + 0.25 * torch.nn.functional.cross_entropy(outputs["parity"], y % 2))
    loss = weighted_loss(outputs, y, targets, trainer.loss_weights, trainer.config.label_smoothing)
    assert torch.allclose(loss, expected)
    assert torch.equal(trainer.train_targets["parity"].cpu(), digits.train.labels % 2)


def test_auxiliary_heads_take_paper_weights_and_per_output_overrides(tmp_path):
    digits = load_data("digits")
    config = TrainConfig(model="googlenet_tv", data="digits", progress=False, output=str(tmp_path / "run"),
                         model_options={"aux_logits": True}, loss_weights={"aux2": 0.1})
    trainer = Trainer(config, data=digits)
    assert trainer.loss_weights == {"main": 1.0, "aux1": 0.3, "aux2": 0.1}
    assert trainer.scored_outputs == ["aux1", "aux2"]  # metrics.csv gets test_acc_aux1, test_acc_aux2


@pytest.mark.parametrize("overrides, message", [
    ({"model": "lenet5_two_head"}, "predicts its own target: add `extra_targets` parity"),
    ({"model": "lenet5_modern", "extra_targets": ["parity"]}, "no output named 'parity'"),
    ({"model": "lenet5_modern", "loss_weights": {"aux1": 0.3}}, "`loss_weights` names aux1"),
])
def test_outputs_targets_and_loss_names_must_agree(tmp_path, overrides, message):
    config = TrainConfig(**{"data": "digits", "output": str(tmp_path / "run"), "progress": False, **overrides})
    with pytest.raises(ConfigError, match=message):
        Trainer(config)


def test_derived_targets_follow_the_class_names():
    labels = torch.tensor([0, 1, 2, 9])
    assert derive_target("parity", labels, [str(i) for i in range(10)]).tolist() == [0, 1, 0, 1]
    cifar = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert derive_target("vehicle", torch.tensor([0, 2, 8, 9]), cifar).tolist() == [1, 0, 1, 1]
    with pytest.raises(DataError, match="needs digit classes"):
        derive_target("parity", labels, cifar)
    with pytest.raises(DataError, match="unknown extra target"):
        derive_target("colour", labels, cifar)
