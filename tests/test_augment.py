"""Per-sample batch augmentation (AutoAugment family, mixup, CutMix) and gradient accumulation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import signal_after_step, write_png_folder
from torchvision.transforms.v2 import functional as TF

from convolab.cli import main
from convolab.data import load_data
from convolab.data.augment import AugmentConfig, BatchTransform
from convolab.data.autoaugment import OP_ID, POLICIES, apply_ops, auto_augment, draw, resolve_policy
from convolab.errors import FieldError
from convolab.training import TrainConfig, Trainer, loop
from convolab.training.engine import TrainingInterrupted
from convolab.training.loop import weighted_loss
from convolab.training.mixing import MixConfig, mix_batch


@pytest.fixture(scope="module")
def digits():
    return load_data("digits").per_class_subsets(480, 200)  # what --train-subset 480 --test-subset 200 train on


def images(n=64, c=3, size=16, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_policy_keeps_shape_and_dtype_and_draws_per_image(policy, channels):
    x = images(c=channels)
    out = auto_augment(x, policy, gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    floats = auto_augment(x.float(), policy, gen())
    assert floats.dtype == torch.float32 and torch.equal(floats, floats.round())
    assert 0 <= floats.min() <= floats.max() <= 255
    ops = torch.stack([op for op, _ in draw(policy, 64, 16, 16, gen())])
    assert len(ops.unique()) > 3  # each image its own operation(s), not one for the batch
    assert (out != x).flatten(1).any(1).sum() > 16


def test_same_seed_same_batch_other_seed_another():
    x = images()
    transform = BatchTransform(3, (16, 16), (0.5,) * 3, (0.5,) * 3, AugmentConfig(crop_padding=2, flip=True,
                                                                                   auto_augment="rand"))
    mixing = MixConfig(mixup=0.2, cutmix=1.0)

    def batch(seed):
        g = gen(seed)
        return mix_batch(transform(x, train=True, generator=g), mixing, g)

    (a, mix_a), (b, mix_b), (c, _) = batch(0), batch(0), batch(1)
    assert torch.equal(a, b) and torch.equal(mix_a.lam, mix_b.lam)
    assert not torch.equal(a, c)


def test_operations_match_torchvisions_on_each_image():
    x = images(8, 3, 12)
    cases = {"Invert": (0, TF.invert), "Posterize": (5, lambda im: TF.posterize(im, 5)),
             "Solarize": (0.5, lambda im: TF.solarize(im, 127.5)), "Equalize": (0, TF.equalize),
             "Rotate": (20.0, lambda im: TF.rotate(im, 20.0)),
             "Contrast": (-0.5, lambda im: TF.adjust_contrast(im, 0.5)),
             "TranslateX": (3.7, lambda im: TF.affine(im, angle=0.0, translate=[3, 0], scale=1.0, shear=[0.0, 0.0])),
             "ShearY": (-0.3, lambda im: TF.affine(im, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                                                   shear=[0.0, math.degrees(math.atan(-0.3))]))}
    for name, (m, reference) in cases.items():
        ours = apply_ops(x.float(), torch.full((8,), OP_ID[name]), torch.full((8,), float(m)))
        assert (ours - reference(x).float()).abs().max() <= 1, name  # uint8 rounding: theirs truncates
    # Image by image: each took its own operation.
    op = torch.tensor([OP_ID["Invert"], OP_ID["Identity"]] * 4)
    out = apply_ops(x.float(), op, torch.zeros(8))
    assert torch.equal(out[0::2], 255 - x[0::2].float()) and torch.equal(out[1::2], x[1::2].float())


@pytest.mark.parametrize("policy", POLICIES)
def test_the_gpus_whole_batch_form_gives_what_picking_the_images_gives(policy):
    """On a GPU each operation runs on the whole batch and a select keeps each image's own (no `nonzero`,
    so the host never waits); on the CPU each runs on the images that drew it. Same images out."""
    for channels, size in ((3, 32), (1, 28)):
        x = images(64, channels, size).float()
        for op, value in draw(policy, 64, size, size, gen()):
            assert torch.equal(apply_ops(x, op, value, dense=True), apply_ops(x, op, value, dense=False))


def test_autoaugment_picks_cifar10_policy_for_small_images():
    assert resolve_policy("autoaugment", 32) == "autoaugment-cifar10"
    assert resolve_policy("autoaugment", 224) == "autoaugment-imagenet"
    assert resolve_policy("trivial", 32) == "trivial"


@pytest.mark.parametrize("mixing", [MixConfig(mixup=0.4), MixConfig(cutmix=1.0), MixConfig(mixup=0.2, cutmix=1.0)])
def test_mixed_labels_sum_to_one_and_weights_differ_per_image(mixing):
    x = torch.rand(32, 3, 16, 16)
    y = torch.arange(32) % 10
    mixed, mix = mix_batch(x, mixing, gen())
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    soft = mix.soft_targets(y, 10)
    assert torch.allclose(soft.sum(1), torch.ones(32)) and (soft >= 0).all()
    assert len(mix.lam.unique()) > 8
    if mixing.mixup == 0:  # CutMix: lam is the share of the image's own pixels left
        own = (mixed == x).all(1).flatten(1).float().mean(1)
        assert torch.allclose(own, mix.lam, atol=1e-6)


def test_mixed_loss_is_cross_entropy_of_mixed_smoothed_targets_for_every_output():
    x = torch.rand(16, 3, 8, 8)
    y, parity = torch.arange(16) % 10, torch.arange(16) % 2
    _, mix = mix_batch(x, MixConfig(mixup=1.0), gen())
    outputs = {"main": torch.randn(16, 10), "aux1": torch.randn(16, 10), "parity": torch.randn(16, 2)}
    weights = {"main": 1.0, "aux1": 0.3, "parity": 0.5}
    loss = weighted_loss(outputs, y, {"parity": parity}, weights, 0.1, mix)
    expected = sum(w * F.cross_entropy(outputs[n], mix.soft_targets(parity if n == "parity" else y, 10 if n != "parity"
                                                                    else 2), label_smoothing=0.1)
                   for n, w in weights.items())
    assert torch.allclose(loss, expected, atol=1e-5)


def quick(tmp_path: Path, name: str, **overrides) -> TrainConfig:
    values = dict(model="lenet5_modern", data="digits", epochs=2, batch_size=32, train_subset=480, test_subset=200,
                  progress=False, threads=1, model_options={"img_size": 12}, output=str(tmp_path / name))
    return TrainConfig(**(values | overrides))


def resumes_exactly(tmp_path: Path, digits, cut_at: int, **options) -> list[dict]:
    whole = Trainer(quick(tmp_path, "whole", **options), data=digits).fit().history
    cut = Trainer(quick(tmp_path, "cut", **options), data=digits)
    signal_after_step(cut, cut_at)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(tmp_path / "cut", data=digits).fit().history
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in whole]
    return whole


def test_resume_mid_epoch_with_mixing_and_a_policy_is_exact(tmp_path, digits):
    resumes_exactly(tmp_path, digits, 20, mixup=0.2, cutmix=1.0, auto_augment="trivial", label_smoothing=0.1)


def test_resume_mid_epoch_with_accumulation_is_exact(tmp_path, digits):
    history = resumes_exactly(tmp_path, digits, 9, batch_size=16, accumulate=2, ema_decay=0.9)
    assert history[-1]["step"] == 2 * 15  # 480 images: 30 batches of 16, 15 optimizer steps an epoch


def test_accumulating_two_batches_of_16_equals_one_of_32(tmp_path, digits):
    common = dict(model="lenet5", optimizer="sgd", lr=0.5, epochs=1, weight_decay=1e-3)
    one = Trainer(quick(tmp_path, "one", **common), data=digits)
    two = Trainer(quick(tmp_path, "two", batch_size=16, accumulate=2, **common), data=digits)
    assert one.steps_per_epoch == two.steps_per_epoch == 15 and two.batches_per_epoch == 30
    one.fit(), two.fit()
    for (name, a), b in zip(one.model.state_dict().items(), two.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    assert one.history[-1]["train_loss"] == pytest.approx(two.history[-1]["train_loss"], abs=1e-5)


def test_a_group_whose_first_batch_is_empty_steps_on_its_own_gradients_only(tmp_path, digits, monkeypatch):
    """A streamed batch of unreadable images comes empty; when it is the first of an --accumulate group, the
    group's step takes the gradients of its other batches alone (not the last step's as well), and a group
    of empty batches makes no step."""
    trainer = Trainer(quick(tmp_path, "r", model="lenet5", optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0,
                            schedule="constant", warmup_epochs=0,
                            batch_size=16, accumulate=2, epochs=1), data=digits)
    run, kept, after = trainer.run, {}, []
    batches = run.batches.train_batches

    def with_empty(epoch, start=0):  # batches 2, 4 and 5 empty: step 2 has batch 3 only, step 3 none
        for i, (images, y, idx) in enumerate(batches(epoch, start), start):
            kept[i] = (images, y)
            yield (images[:0], y[:0], idx[:0]) if i in (2, 4, 5) else (images, y, idx)

    step = loop.optimizer_step

    def recorded(run_):
        step(run_)
        after.append({k: v.clone() for k, v in run_.model.state_dict().items()})

    monkeypatch.setattr(run.batches, "train_batches", with_empty)
    monkeypatch.setattr(loop, "optimizer_step", recorded)
    trainer.fit()
    assert len(after) == run.steps_per_epoch - 1  # the empty group made no step
    run.model.load_state_dict(after[0])
    images, y = kept[3]
    loss = F.cross_entropy(run.forward_model(run.transform(images, train=True, generator=run.aug_generator))["main"], y)
    loss.backward()  # (the step's mean over its images: batch 3's alone, as one batch of them would give)
    for name, p in run.model.named_parameters():
        torch.testing.assert_close(after[1][name], after[0][name] - 0.1 * p.grad, rtol=0, atol=1e-6)


def test_combinations_that_make_no_sense_are_refused_in_one_line(tmp_path, digits):
    with pytest.raises(FieldError, match="accumulate.*too few for one optimizer step; give at most 15"):
        Trainer(quick(tmp_path, "a", accumulate=16), data=digits)
    for option in ("mixup", "cutmix"):  # refused by the options themselves, before any data are read
        with pytest.raises(FieldError, match=f"{option} mixes the images of a batch, but `batch_size` 1 holds one"):
            TrainConfig(model="lenet5", batch_size=1, **{option: 0.2})
        TrainConfig(model="lenet5", batch_size=2, **{option: 0.2})  # two will do
    with pytest.raises(FieldError, match="mixup must be a number >= 0"):
        TrainConfig(model="lenet5", mixup=-1.0)


def test_cli_records_the_options_in_the_run_config(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--mixup", "0.2", "--cutmix", "1.0",
                 "--auto-augment", "trivial", "--accumulate", "2", "--train-subset", "320", "--model-option",
                 "img_size=12", "--no-progress", "--output", str(run)])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["mixup"], config["cutmix"], config["auto_augment"], config["accumulate"]) == (0.2, 1.0, "trivial", 2)
    assert config["resolved"]["augment"]["auto_augment"] == "trivial"
    assert config["resolved"]["effective_batch_size"] == 128


def test_streamed_images_take_the_policy_and_mixing_and_resume_exactly(tmp_path):
    folder = write_png_folder(tmp_path / "photos", per_class=16)
    options = dict(data=str(folder), loader="stream", workers=0, batch_size=8, train_subset=None, test_subset=None,
                   auto_augment="rand", mixup=0.2, cutmix=1.0)
    whole = Trainer(quick(tmp_path, "whole", **options))
    assert whole.streaming and whole.transform.augment.auto_augment == "rand" and whole.steps_per_epoch == 6
    history = whole.fit().history
    cut = Trainer(quick(tmp_path, "cut", **options))
    signal_after_step(cut, 8)  # in the middle of epoch 2
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(tmp_path / "cut").fit().history
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in history]


def test_mixing_drops_a_last_batch_of_one_image(tmp_path):
    """21 images in batches of 4: five mixed batches, the last image left out (as any last partial batch)."""
    run = tmp_path / "run"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--train-subset", "21", "--test-subset", "10",
                 "--batch-size", "4", "--mixup", "0.2", "--cutmix", "1", "--no-progress", "--output", str(run)]) == 0
    steps = (run / "steps.csv").read_text().splitlines()
    assert steps[0].split(",")[-1] == "images" and steps[-1].split(",")[0] == "5" and steps[-1].endswith(",20")
