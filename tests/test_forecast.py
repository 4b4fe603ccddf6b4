"""The cost said before a run starts (convolab/training/forecast.py): the memory estimate against a measured
training step, the warning before a far resize, the refusal where the memory would not fit."""
from __future__ import annotations

import logging

import pytest
import torch

from convolab import create_model
from convolab.cli import main
from convolab.training import forecast
from convolab.training.forecast import check_cost, estimate_cost

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def test_estimate_counts_the_macs_of_resnet20_and_its_memory_within_a_third_of_a_measured_step():
    model = create_model("resnet20", num_classes=10)
    cost = estimate_cost(model, 3, 32, CPU)
    assert cost.macs == 40_551_040  # REFERENCE.md's 40.55 M MACs at 32 px (10 classes)
    params = sum(p.numel() for p in model.parameters())
    assert cost.fixed_bytes == 4 * 3 * params  # weights, gradients, SGD momentum
    # what autograd keeps for backward, measured: the bytes of every tensor saved for a batch of 16
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        model.train()(torch.randn(16, 3, 32, 32)).sum()
    kept = sum(t.numel() * t.element_size() for t in {t.untyped_storage().data_ptr(): t for t in saved}.values())
    estimated = 16 * cost.activation_bytes / forecast.BACKWARD
    assert 0.67 < estimated / kept < 1.5, (estimated, kept)


def test_a_far_resize_of_a_heavy_epoch_is_said_with_a_timed_probe_that_changes_nothing(caplog):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    caplog.set_level(logging.WARNING)
    check_cost(model, "resnet20", 1, 128, 28, 64, 60_000, CPU, amp=False, channels_last=False, optimizer="sgd",
               memory_check=True)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("resnet20 resizes the 28 px images to 128 px (21x the pixels): 0.64 G MACs an image, "
                           "about ") and " of memory at batch 64 and about " in line and " an epoch on cpu" in line
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # BN statistics put back
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())


def test_a_light_epoch_or_the_images_own_size_is_not_worth_a_word(caplog):
    caplog.set_level(logging.WARNING)
    model = create_model("lenet5", num_classes=10)
    check_cost(model, "lenet5", 1, 28, 8, 64, 1438, CPU, False, False, "sgd", True)  # digits: 8 px to 28
    check_cost(create_model("resnet20"), "resnet20", 3, 32, 32, 128, 50_000, CPU, False, False, "sgd", True)
    assert caplog.records == []


def test_memory_that_would_not_fit_is_refused_with_the_batch_that_fits(monkeypatch, capsys):
    monkeypatch.setattr(forecast, "available_memory", lambda device: 2**30)  # 1 GiB free
    code = main(["train", "resnet20", "--data", "digits", "--image-size", "64", "--batch-size", "1024",
                 "--output", "unused"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("convolab train: error: resnet20 at 64 px, batch 1024, would need about "), err
    assert "more than the 1.0 GiB free on cpu: lower --batch-size to " in err and "--no-memory-check" in err
    fits = int(err.split("lower --batch-size to ")[1].split()[0])
    cost = estimate_cost(create_model("resnet20", num_classes=10, in_chans=1), 1, 64, CPU)
    assert cost.training_bytes(fits) <= 2**30 < cost.training_bytes(fits + 1)
