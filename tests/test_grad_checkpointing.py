"""Gradient checkpointing (`model.set_grad_checkpointing()`, `train --grad-checkpointing`): the blocks recompute their
activations in the backward pass, and a step computes what it computes without: outputs, gradients, batch-norm
statistics and dropout masks alike."""
from __future__ import annotations

import contextlib
import copy
import csv
import logging

import pytest
import torch

import convolab
from convolab.cli import main
from convolab.errors import ConfigError
from convolab.layers import checkpointing
from convolab.training import TrainConfig, Trainer
from convolab.training.forecast import estimate_cost

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

MODELS = [("resnet20", 32, {}), ("preact_resnet18", 32, {}), ("densenet40_k12", 32, {"drop_rate": 0.2}),
          ("googlenet_small", 32, {"drop_rate": 0.2}), ("inception_v3", 75, {}), ("inception_v4", 75, {}),
          ("inception_resnet_v2", 75, {}), ("bn_inception", 64, {}), ("nin_cifar", 32, {}),
          ("resnet_mnist", 28, {}), ("inception_mnist", 28, {})]


def one_step(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(1)  # (the same dropout draws for both)
    out = model.train()(x)
    out = out[0] if isinstance(out, tuple) else out
    out.square().sum().backward()
    return out.detach()


def differences(plain: torch.nn.Module, checkpointed: torch.nn.Module, size: int) -> tuple[float, float, float]:
    x = torch.randn(2, plain.in_chans, size, size, generator=torch.Generator().manual_seed(0))
    out = (one_step(plain, x) - one_step(checkpointed, x)).abs().max().item()
    grads = max((p.grad - q.grad).abs().max().item() for p, q in zip(plain.parameters(), checkpointed.parameters())
                if p.grad is not None)
    buffers = max(((u.double() - v.double()).abs().max().item() for u, v in zip(plain.buffers(),
                                                                                 checkpointed.buffers())), default=0.0)
    return out, grads, buffers


@pytest.mark.parametrize("name, size, options", MODELS, ids=[m[0] for m in MODELS])
def test_a_checkpointed_step_computes_what_a_plain_one_does(name, size, options):
    plain = convolab.create_model(name, **options)
    checkpointed = copy.deepcopy(plain)
    checkpointed.set_grad_checkpointing()
    assert sum(getattr(m, "grad_checkpointing", False) for m in checkpointed.modules()) >= 2
    assert differences(plain, checkpointed, size) == (0.0, 0.0, 0.0)  # (bit for bit on the CPU, dropout included)


def test_the_blocks_run_again_in_the_backward_pass_and_batch_norm_counts_one_batch(monkeypatch):
    model = convolab.create_model("resnet20")
    model.set_grad_checkpointing()
    calls = []
    model.layer1[0].conv1.register_forward_hook(lambda *_: calls.append(1))
    one_step(model, torch.randn(2, 3, 32, 32))
    assert len(calls) == 2  # (the forward pass, then its recomputation)
    assert int(model.layer1[0].bn1.num_batches_tracked) == 1
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, 32, 32))
    assert len(calls) == 3  # (evaluation: once, nothing kept for a backward pass)
    model.set_grad_checkpointing(False)
    one_step(model, torch.randn(2, 3, 32, 32))
    assert len(calls) == 4
    # the statistics put back after the recomputation are what keeps them exact: without, each batch counts twice
    monkeypatch.setattr(checkpointing, "_statistics_kept", lambda norms: contextlib.nullcontext())
    plain = convolab.create_model("resnet20")
    again = copy.deepcopy(plain)
    again.set_grad_checkpointing()
    assert differences(plain, again, 32)[2] > 0
    with pytest.raises(TypeError, match="enable must be True or False, got 'yes'"):
        model.set_grad_checkpointing("yes")


def test_the_memory_estimate_counts_what_the_backward_pass_holds():
    """DenseNet's concatenations are its memory (Pleiss et al. 2017): recomputed, a fifth of them is held."""
    model = convolab.create_model("densenet121")
    plain = estimate_cost(model, 3, 224, torch.device("cpu")).activation_bytes
    model.set_grad_checkpointing()
    held = estimate_cost(model, 3, 224, torch.device("cpu")).activation_bytes
    assert 0.1 < held / plain < 0.3


def test_train_grad_checkpointing_trains_the_same_run_and_says_where_it_does_nothing(tmp_path, caplog):
    argv = ["train", "resnet_mnist", "--data", "digits", "--epochs", "2", "--train-subset", "200", "--batch-size",
            "32", "--no-progress", "--output"]
    assert main([*argv, str(tmp_path / "plain")]) == 0
    assert main([*argv, str(tmp_path / "checkpointed"), "--grad-checkpointing"]) == 0

    def figures(run: str) -> list[list[str]]:  # (the columns of what was computed, not of how long it took)
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            return [row[:7] for row in csv.reader(f)]

    assert figures("plain") == figures("checkpointed")
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--train-subset", "100", "--no-progress",
                 "--grad-checkpointing", "--output", str(tmp_path / "lenet")]) == 0
    assert "--grad-checkpointing is not used: lenet5 has no block convolab's checkpointing knows" in caplog.text


def test_a_model_cut_by_until_refuses_checkpointing_it_would_not_reach():
    """Its traced forward runs the blocks' layers one by one: the flags were set and nothing recomputed."""
    cut = convolab.create_model("resnet20", until="layer2")
    with pytest.raises(ConfigError, match="resnet20 cut at 'layer2' runs its layers as one traced graph, which "
                                          "gradient checkpointing does not reach"):
        cut.set_grad_checkpointing()
    assert cut.set_grad_checkpointing(False) == 0
    with pytest.raises(ConfigError, match="resnet20 built features_only runs its layers as one traced graph"):
        convolab.create_model("resnet20", features_only=True).set_grad_checkpointing()  # (an AttributeError before)
    assert convolab.create_model("resnet20").set_grad_checkpointing() == 9  # (three stages of three blocks)



def test_a_timm_model_given_to_train_is_checkpointed_by_its_own_method(tmp_path, caplog):
    """A model with its own set_grad_checkpointing (timm's) takes it, where convolab's blocks are none of its."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", num_classes=10, in_chans=1)
    caplog.set_level(logging.WARNING, logger="convolab")
    Trainer(TrainConfig(model="resnet18", data="digits", epochs=1, grad_checkpointing=True, progress=False,
                        output=str(tmp_path / "timm")), model=model)
    assert model.grad_checkpointing and "not used" not in caplog.text
