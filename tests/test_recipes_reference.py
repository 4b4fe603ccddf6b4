"""The recipe parts against the references users trust (a tester compared each number): RMSProp as TensorFlow
runs it (Inception-v3's), a constant schedule that is constant, He et al.'s constant warm-up of ResNet-110, the
CutMix box of timm's rand_bbox and random erasing as torchvision's RandomErasing draws it."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convolab.data.augment import random_erasing
from convolab.reproduce import arm_configs, get_experiment
from convolab.training import TrainConfig, mixing
from convolab.training.optim import build_optimizer, lr_factor, warmup_length


# ----- RMSProp ----------------------------------------------------------------------------------------------
def test_rmsprop_is_tensorflows_the_mean_square_from_one_and_eps_inside_the_root():
    p = nn.Parameter(torch.zeros(1))
    opt = build_optimizer([{"params": [p], "weight_decay": 0.0}], "rmsprop", 0.045, 0.9)
    lr, ms, buf, value = 0.045, 1.0, 0.0, 0.0
    for g in (0.01, 1.0, -0.5, 2.0):
        p.grad = torch.tensor([g])
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g  # (torch's RMSprop: from 0, and lr * g / (sqrt(ms) + eps))
        buf = 0.9 * buf + lr * g / math.sqrt(ms + 1.0)
        value -= buf
        assert p.item() == pytest.approx(value, rel=1e-6)


def test_rmsprop_follows_timms_rmsproptf_with_weight_decay_and_a_changing_rate():
    RMSpropTF = pytest.importorskip("timm.optim").RMSpropTF
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 3), nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    a = build_optimizer([{"params": list(ours.parameters()), "weight_decay": 1e-4}], "rmsprop", 0.045, 0.9)
    b = RMSpropTF(theirs.parameters(), lr=0.045, alpha=0.9, eps=1.0, momentum=0.9, weight_decay=1e-4)
    for step in range(40):
        x = torch.randn(8, 5)
        for model, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
            if step == 20:
                opt.param_groups[0]["lr"] = 0.01
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ----- schedules --------------------------------------------------------------------------------------------
def test_a_constant_schedule_has_no_warm_up_unless_one_is_given():
    constant = TrainConfig(model="lenet5", schedule="constant")
    assert constant.warmup == 0 and warmup_length(constant, 20) == 0
    assert [lr_factor(s, 40, "constant", warmup_length(constant, 20)) for s in range(40)] == [1.0] * 40
    assert warmup_length(TrainConfig(model="lenet5"), 20) == 20  # (onecycle: one epoch, as before)
    assert warmup_length(TrainConfig(model="lenet5", schedule="constant", warmup_epochs=0.5), 20) == 10


def test_a_constant_warm_up_trains_at_a_tenth_of_the_rate_then_at_it():
    factors = [lr_factor(s, 100, "multistep", 10, warmup_mode="constant") for s in range(100)]
    assert factors[:10] == [0.1] * 10 and factors[10:55] == [1.0] * 45
    assert [lr_factor(s, 100, "multistep", 10) for s in range(3)] == [0.1, 0.2, 0.3]  # (linear)


def test_resnet_cifar_full_form_warms_resnet110_up_as_the_paper_and_the_quick_form_does_not():
    experiment = get_experiment("resnet-cifar")
    assert [arm.models for arm in experiment.arms] == [("resnet20", "resnet32", "resnet44", "resnet56"),
                                                       ("resnet110",)]
    base = TrainConfig(model="resnet20", data="cifar10")
    shallow, deep = arm_configs(experiment, False, 0, base)
    assert (shallow.warmup, shallow.lr, shallow.schedule) == (0, 0.1, "multistep")
    assert (deep.warmup, deep.warmup_mode, deep.lr) == (1, "constant", 0.1)
    steps = 50_000 // 128 + 1  # (391)
    assert deep.base_lr * lr_factor(0, 164 * steps, deep.schedule, warmup_length(deep, steps),
                                    warmup_mode=deep.warmup_mode) == pytest.approx(0.01)
    quick = arm_configs(experiment, True, 0, base)
    assert [c.warmup_mode for c in quick] == ["linear", "linear"]


# ----- CutMix and random erasing ----------------------------------------------------------------------------
def test_the_cutmix_box_is_timms_rand_bbox_an_odd_side_whole(monkeypatch):
    monkeypatch.setattr(mixing, "beta", lambda alpha, n, generator, stream=0, device="cpu": torch.full((n,), 0.5))
    x = torch.arange(512.0).view(512, 1, 1, 1).expand(512, 1, 28, 28).contiguous()
    out, mixed = mixing.mix_batch(x, mixing.MixConfig(cutmix=1.0), torch.Generator().manual_seed(0))
    pasted = (out != x).flatten(1).sum(1)
    side = int(28 * math.sqrt(0.5))  # 19, as timm: int(img_h * sqrt(1 - lam))
    assert int(pasted.max()) == side * side  # (before: 18 x 18, the odd pixel lost)
    torch.testing.assert_close(mixed.lam, 1 - pasted.float() / 784)


def test_random_erasing_erases_what_torchvisions_erases_on_average():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    x = torch.ones(3000, 3, 28, 28)
    ours = (random_erasing(x, 1.0, torch.Generator().manual_seed(0)) == 0).all(1).float().mean().item()
    torch.manual_seed(0)
    erase = v2.RandomErasing(p=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)
    theirs = torch.stack([(erase(img) == 0).all(0).float().mean() for img in x]).mean().item()
    assert abs(ours - theirs) < 0.006  # (0.175 each; before 0.159: sides rounded down and cut to the image)


def test_random_erasing_leaves_an_image_whose_rectangles_never_fit_as_torchvision_does():
    x = torch.ones(50, 1, 8, 8)
    out = random_erasing(x, 1.0, torch.Generator().manual_seed(0), scale=(0.9, 0.99), ratio=(3.0, 3.3))
    assert torch.equal(out, x)  # (13 px by 4: no try fits 8 px; before, cut to 8 and erased)
