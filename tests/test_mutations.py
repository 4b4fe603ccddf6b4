"""Faults a hand-made mutation test of the source showed no test would catch: each test here fails on the mutated
line named in its docstring (a real bug could look like it), and passes on the code as it is."""
from __future__ import annotations

import copy
import dataclasses
import io
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_png_folder
from PIL import Image
from torch import nn

from convolab import create_model
from convolab._atomic import atomic_write
from convolab.analysis import count_params, summary
from convolab.compare import results as results_module
from convolab.compare.seeds import welch_test
from convolab.data import ImageData, Split, load_data
from convolab.data.augment import AugmentConfig, BatchTransform, convert_channels, random_crop
from convolab.data.decode import decode_crop
from convolab.data.stream import epoch_permutation
from convolab.errors import ConfigError, DataError
from convolab.export import fold_batchnorm
from convolab.finetune import finetune_trainer
from convolab.layers import PreActBasicBlock, PreActBottleneck
from convolab.models.densenet import DenseNet, DenseNetSpec
from convolab.models.inception_resnet import InceptionResnetA, InceptionResnetB, InceptionResnetC
from convolab.reproduce.experiments import Outcome, degradation_verdict
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.checkpoint import checkpoint_model
from convolab.training.evaluation import evaluate
from convolab.training.loop import set_lr, weighted_loss
from convolab.training.optim import build_optimizer, optimizer_of, param_groups, warmup_length
from convolab.training.recipes import recipe_values


def test_evaluate_scores_a_model_in_eval_mode_whatever_mode_it_was_in():
    """evaluation.py `model.eval()` deleted: lenet5_bn scored in train mode (batch statistics, running statistics
    updated from the test images) gave train 0.9443 where evaluate gave 0.9387; no test used a BN model."""
    torch.manual_seed(0)
    model = create_model("lenet5_bn", num_classes=3)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    reference = copy.deepcopy(model).eval()
    images, labels = torch.randint(0, 256, (24, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 3, (24,))
    transform = BatchTransform(1, (28, 28), (0.5,), (0.25,), AugmentConfig())
    model.train()
    result = evaluate(model, images, labels, transform, 8, torch.device("cpu"), return_logits=True)
    with torch.no_grad():
        expected = reference(transform(images))
    assert torch.allclose(result["logits"], expected, atol=1e-5)
    assert result["loss"] == pytest.approx(F.cross_entropy(expected, labels).item(), rel=1e-5)


def test_atomic_write_with_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    """_atomic.py `write(tmp)` made `write(path)`: a writer failing midway left `epoch,te` of a metrics.csv."""
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,test_acc\n1,0.9\n")

    def half(tmp: str) -> None:
        Path(tmp).write_text("epoch,te")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError):
        atomic_write(path, half)
    assert path.read_text() == "epoch,test_acc\n1,0.9\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_label_smoothing_reaches_the_loss():
    """loop.py `label_smoothing=smoothing` made 0.0: --label-smoothing 0.1 trained as 0 (checked only with mixup)."""
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    got = weighted_loss({"main": logits}, y, None, {"main": 1.0}, 0.1)
    assert got.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6)
    assert got.item() != pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-3)


def test_the_data_order_depends_on_both_the_seed_and_the_epoch():
    """stream.py `manual_seed(seed * 1_000_003 + epoch)` made `(seed * 1_000_003)` (every epoch the same order) or
    `(epoch)` (every --seed the same order): no test ran two epochs or two seeds of it."""
    assert not torch.equal(epoch_permutation(50, 0, 0), epoch_permutation(50, 0, 1))
    assert not torch.equal(epoch_permutation(50, 0, 3), epoch_permutation(50, 1, 3))
    assert torch.equal(epoch_permutation(50, 7, 2), epoch_permutation(50, 7, 2))


def test_a_run_stopped_early_at_exactly_its_patience_is_complete():
    """results.py `>= config.patience` made `>`: `report` called a run stopped by --patience 1 "interrupted"."""
    config = TrainConfig(model="lenet5", epochs=8, patience=1)
    state = {"batch_in_epoch": 0, "epoch": 4, "epochs_since_best": 1, "wall_seconds": 3.0}
    assert results_module.run_is_complete(config, state)
    assert not results_module.run_is_complete(config, {**state, "epochs_since_best": 0})


def test_the_reports_final_accuracy_is_the_last_epochs_not_the_best(digits_run, monkeypatch):
    """results.py `final_acc = accs[-1]` made `max(accs)`: a run of 0.8384, 0.9276, 0.9526, 0.9164 showed 0.9526."""
    row = results_module.read_history(digits_run)[0]
    history = [{**row, "epoch": e, "test_acc": acc} for e, acc in enumerate((0.8384, 0.9526, 0.9164), start=1)]
    monkeypatch.setattr(results_module, "read_history", lambda run_dir: history)
    result = results_module.read_run(digits_run)
    assert result.final_acc == 0.9164 and result.epochs == 3


def test_the_seed_test_is_welchs_unequal_variances():
    """seeds.py `equal_var=False` made True: Student's t (0.75, p 0.483) printed as "Welch" (0.99, p 0.376)."""
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [0.90, 0.91, 0.92], [0.80, 0.95, 0.70, 0.99, 0.85]
    test, expected = welch_test(a, b), scipy_stats.ttest_ind(a, b, equal_var=False)
    assert test is not None
    assert test.t == pytest.approx(float(expected.statistic), rel=1e-6)
    assert test.p == pytest.approx(float(expected.pvalue), rel=1e-6)


def test_folding_a_batch_norm_into_a_convolution_with_a_bias():
    """fold.py `(bias - mean) * scale` made `bias - mean * scale`: only lenet5_bn has conv-with-bias -> BN pairs,
    and no test exported it (its ONNX export then failed, 0.0217 apart)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.ReLU())
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    model[1].weight.data.uniform_(0.5, 1.5)
    model[1].bias.data.uniform_(-1, 1)
    model.eval()
    folded = fold_batchnorm(model)
    assert isinstance(folded[1], nn.Identity)
    x = torch.randn(2, 3, 10, 10)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_random_crop_shifts_both_ways_on_both_axes():
    """augment.py `randint(0, 2 * padding + 1)` made `(0, 2 * padding)`: rows shifted by -1..2, not -2..2."""
    x = torch.zeros(4000, 1, 9, 9)
    x[:, 0, 4, 4] = 1  # a marker in the middle
    crops = random_crop(x, 2, torch.Generator().manual_seed(0))
    where = crops[:, 0].flatten(1).argmax(1)
    rows, cols = set((where // 9 - 4).tolist()), set((where % 9 - 4).tolist())
    assert rows == cols == {-2, -1, 0, 1, 2}


def test_a_colour_image_made_grey_by_the_luma_weights():
    """augment.py's [0.299, 0.587, 0.114] reversed (BGR): an all-ones image, the only one tested, sums to 1 either
    way; pure red is 0.299."""
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    blue = red.roll(2, dims=1)
    assert convert_channels(red, 1).flatten().tolist() == pytest.approx([0.299] * 4)
    assert convert_channels(blue, 1).flatten().tolist() == pytest.approx([0.114] * 4)


def test_a_fine_tuned_models_new_head_follows_the_seed(digits_run, tmp_path):
    """finetune.py `torch.manual_seed(config.seed)` removed: every --seed gave the same new head."""
    digits = load_data("digits")
    three = ImageData("three", Split(digits.train.images[:60], digits.train.labels[:60] % 3),
                      Split(digits.test.images[:30], digits.test.labels[:30] % 3), ["a", "b", "c"])
    config = TrainConfig(model="", epochs=1, batch_size=10, progress=False)

    def head(seed: int, name: str) -> torch.Tensor:
        trainer = finetune_trainer(digits_run, dataclasses.replace(config, seed=seed, output=str(tmp_path / name)),
                                   data=three)
        return trainer.model.head.fc.weight.detach().clone()

    first = head(0, "a")
    assert torch.equal(first, head(0, "b"))
    assert not torch.equal(first, head(1, "c"))


def test_total_and_trainable_parameters_of_a_partly_frozen_model():
    """counting.py `p.requires_grad or not trainable_only` made `or trainable_only`: a model with frozen features
    had its total and trainable counts swapped (only a fully trainable model was tested)."""
    model = create_model("lenet5")
    for p in model.features.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.features.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert count_params(model) == total and count_params(model, trainable_only=True) == total - frozen
    report = summary(model, (1, 28, 28))
    assert (report.total_params, report.trainable_params) == (total, total - frozen)


def test_a_checkpoints_model_is_built_in_eval_mode(digits_run):
    """checkpoint.py `model.eval()` removed: callers mostly call it again, but the docstring promises eval mode."""
    assert checkpoint_model(load_checkpoint(digits_run / "best.pt"), digits_run).training is False


def _digits(n_train: int = 128) -> ImageData:
    """The first images of the digits: a Trainer built in a second (4 steps an epoch at a batch of 32)."""
    digits = load_data("digits")
    return ImageData(digits.name, digits.train.subset(torch.arange(n_train)), digits.test.subset(torch.arange(32)),
                     digits.classes)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_a_densenets_dropout_is_off_in_eval_mode(stem):
    """dense.py `F.dropout(..., training=self.training)` made `training=True`: a DenseNet with drop_rate > 0 gave a
    different answer to every call in eval mode (evaluation, export, predict); no test ran one with dropout."""
    torch.manual_seed(0)
    model = DenseNet(DenseNetSpec((2, 2), growth_rate=4, num_init_features=8), num_classes=3, stem=stem,
                     drop_rate=0.5)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))  # dropout is there: the check below is not vacuous
        plain = DenseNet(DenseNetSpec((2, 2), growth_rate=4, num_init_features=8), num_classes=3, stem=stem)
        plain.load_state_dict(model.state_dict())  # (after the train-mode calls: their BN statistics too)
        first = model.eval()(x)
        assert torch.equal(first, model(x))
        assert torch.allclose(first, plain.eval()(x), atol=1e-6)  # eval mode: as if there were no dropout


@pytest.mark.parametrize("block, in_channels, planes, stride", [
    (PreActBottleneck, 64, 16, 1), (PreActBottleneck, 32, 16, 2), (PreActBasicBlock, 16, 16, 1),
    (PreActBasicBlock, 16, 32, 2)])
def test_preact_blocks_are_bn_relu_conv_throughout_plus_the_shortcut(block, in_channels, planes, stride):
    """residual.py PreActBottleneck's `self.conv3(self.relu(self.bn3(out)))` made `self.conv3(self.bn3(out))`: the
    third unit lost its ReLU (preact_resnet164's every block); the tests checked shapes and a zeroed conv only."""
    torch.manual_seed(0)
    b = block(in_channels, planes, stride).eval()
    bns = [m for m in b.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == (3 if block is PreActBottleneck else 2)
    for bn in bns:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, in_channels, 8, 8)
    r = torch.relu
    pre = r(b.bn1(x))
    if block is PreActBottleneck:  # BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1
        residual = b.conv3(r(b.bn3(b.conv2(r(b.bn2(b.conv1(pre)))))))
    else:  # BN-ReLU-3x3, BN-ReLU-3x3
        residual = b.conv2(r(b.bn2(b.conv1(pre))))
    shortcut = x if b.downsample is None else b.downsample(pre)  # a projection takes the activated input
    assert (b.downsample is None) == (stride == 1 and in_channels == planes * block.expansion)
    with torch.no_grad():
        assert torch.allclose(b(x), residual + shortcut, atol=1e-5)


def test_nesterov_momentum_reaches_sgd(tmp_path):
    """optim.py `nesterov=nesterov and momentum > 0` made `nesterov=False`: --nesterov, and --recipe fast (SGD with
    Nesterov momentum), trained with plain momentum; test_options built such an optimizer to check a warning only."""
    model = create_model("lenet5", num_classes=10)
    sgd = build_optimizer(param_groups(model, 5e-4), "sgd", 0.1, momentum=0.9, nesterov=True)
    assert [g["nesterov"] for g in sgd.param_groups] == [True, True]
    assert not build_optimizer(param_groups(model, 5e-4), "sgd", 0.1, momentum=0.0, nesterov=True) \
        .param_groups[0]["nesterov"]  # (Nesterov needs momentum: refused by torch, said to be ignored)
    assert not build_optimizer(param_groups(model, 5e-4), "sgd", 0.1, momentum=0.9).param_groups[0]["nesterov"]
    config = TrainConfig(model="lenet5", optimizer="sgd", momentum=0.9, nesterov=True)
    assert optimizer_of(config, param_groups(model, 5e-4)).param_groups[0]["nesterov"] is True
    given = {"model": "lenet5", "data": "digits", "epochs": 1, "batch_size": 32, "progress": False, "recipe": "fast",
             "output": str(tmp_path / "run")}
    trainer = Trainer(TrainConfig(**(recipe_values("fast", set(given)) | given)), data=_digits())
    assert [(g["momentum"], g["nesterov"]) for g in trainer.optimizer.param_groups] == [(0.9, True)] * 2


def test_a_warm_up_over_half_the_run_is_cut_to_half_and_the_decay_follows(tmp_path):
    """optim.py `return min(asked, total // 2)` made `return asked`: --epochs 2 --warmup-epochs 1.5 warmed up for 33
    of 44 steps while the warning said 22, so at step 30 the rate still rose (31/33) where the cosine decay gives
    0.708."""
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=2, warmup_epochs=1.5)
    assert warmup_length(config, 22) == 22 and warmup_length(dataclasses.replace(config, warmup_epochs=0.5), 22) == 11
    config = dataclasses.replace(config, model="lenet5", batch_size=32, schedule="cosine", lr=0.01, progress=False,
                                 output=str(tmp_path / "run"))
    trainer = Trainer(config, data=_digits())  # 4 steps an epoch, 8 in all: a warm-up of 6 asked, 4 taken
    assert (trainer.steps_per_epoch, trainer.total_steps, trainer.warmup_steps) == (4, 8, 4)
    assert set_lr(trainer.run, 0) == pytest.approx(0.01 / 4) and set_lr(trainer.run, 3) == pytest.approx(0.01)
    cosine = 0.01 * 0.5 * (1 + math.cos(math.pi * (5 - 4) / (8 - 4)))  # step 5: a quarter into the decay
    assert set_lr(trainer.run, 5) == pytest.approx(cosine)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cosine)


def test_inception_resnet_v1_scales_each_kind_of_residual_as_the_paper():
    """inception_resnet.py IR_V1's `scales=(0.17, 0.10, 0.20)` made `(0.10, 0.17, 0.20)`: Block35 scaled by 0.10 and
    Block17 by 0.17 (the module docstring and TF-slim/facenet say 0.17 and 0.10); no test looked at v1's scales."""
    model = create_model("inception_resnet_v1", num_classes=10)
    scales = {kind.__name__: [b.scale for b in model.modules() if type(b) is kind]
              for kind in (InceptionResnetA, InceptionResnetB, InceptionResnetC)}
    assert scales == {"InceptionResnetA": [0.17] * 5, "InceptionResnetB": [0.10] * 10,
                      "InceptionResnetC": [0.20] * 5 + [1.0]}
    assert model.block8.scale == 1.0 and isinstance(model.block8.act, nn.Identity)  # the last: unscaled, no ReLU


def test_the_degradation_verdict_needs_resnet56_below_plain56_too():
    """experiments.py `fixed = r56 <= r20 and r56 < p56` made `r56 <= r20`: a resnet56 that trained no worse than
    resnet20 but worse than plain56 (train errors 0.25 against 0.20) was called "reproduced" while the line printed
    "and >= plain56"; every tested outcome had resnet56 below plain56 or above resnet20."""
    def final(train_acc: float) -> list[list[dict[str, float]]]:
        return [[{"train_acc": train_acc, "test_acc": train_acc}]]

    outcome = Outcome({"plain20": final(0.9), "plain56": final(0.8), "resnet20": final(0.7), "resnet56": final(0.75)})
    ok, line = degradation_verdict(outcome)
    assert not ok and line == ("degradation: plain56 final train error 0.200 > plain20 0.100; resnet56 0.250 <= "
                               "resnet20 0.300 and >= plain56: not reproduced"), line
    ok, line = degradation_verdict(Outcome(outcome.runs | {"resnet56": final(0.85)}))  # 0.15: below both
    assert ok and line.endswith("resnet56 0.150 <= resnet20 0.300 and < plain56: reproduced"), line


@pytest.mark.parametrize("mixing", [{"mixup": 0.2}, {"cutmix": 1.0}])
def test_mixing_is_refused_for_a_labels_csv_with_numeric_targets(tmp_path, mixing):
    """targets.py `if numbers and (config.mixup or config.cutmix)` made `if numbers and config.mixup`: `convolab
    train ... --data labels.csv --cutmix 1.0` on a CSV with an age column trained without a word (CutMix's mixed
    labels beside a regression target); only --mixup was tested."""
    header = ["image", "species", "age", "split"]
    rows = [[f"{i}.png", ("cat", "dog")[i % 2], str(3 + i), "test" if i % 4 == 3 else "train"] for i in range(8)]
    for i in range(8):
        Image.new("L", (28, 28), 20 * i).save(tmp_path / f"{i}.png")
    (tmp_path / "labels.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    data = load_data(str(tmp_path / "labels.csv"))
    config = TrainConfig(model="lenet5_modern", batch_size=2, epochs=1, progress=False, output=str(tmp_path / "run"),
                         **mixing)
    with pytest.raises(ConfigError, match="`mixup` and `cutmix` mix class labels; this labels CSV has numeric"):
        Trainer(config, data=data)
    Trainer(dataclasses.replace(config, mixup=0.0, cutmix=0.0, output=str(tmp_path / "plain")), data=data)


def test_a_streamed_images_random_crop_changes_from_epoch_to_epoch(tmp_path):
    """stream.py `_sample_key` `f"convolab/{seed}/{epoch}/{index}"` made `f"convolab/{seed}/{index}"`: every epoch
    cut each streamed image the same crop (and flip), a tenth of the augmentation; the test of "another epoch, other
    crops" compared the first batches of two epochs, which hold other images anyway."""
    root = write_png_folder(tmp_path / "photos", per_class=4, size=64, classes=("a", "b"))
    data = load_data(str(root), loader="stream", workers=0)
    data.configure(16, flip=True)
    loader, sampler = data.train_loader(batch_size=4, seed=3)

    def crops(epoch: int) -> dict[int, torch.Tensor]:
        sampler.set_epoch(epoch)
        return {i: image for images, _, index in data.batches(loader, data.train)
                for i, image in zip(index.tolist(), images)}

    first, again, second = crops(0), crops(0), crops(1)
    assert len(first) == len(second) == 8
    assert all(torch.equal(first[i], again[i]) for i in first)  # (seed, epoch, index) alone decide
    assert sum(not torch.equal(first[i], second[i]) for i in first) >= 7  # the next epoch: other crops


def test_a_random_crop_with_flip_is_mirrored_half_the_time():
    """decode.py `rng.random() < 0.5` made `< 0.0`: streamed training images (--augment crop-flip) were never
    mirrored; no test looked at a flip of decode_crop."""
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    mirrored = 0
    for seed in range(40):
        plain = decode_crop(png.getvalue(), 16, "RGB", random.Random(seed))
        flipped = decode_crop(png.getvalue(), 16, "RGB", random.Random(seed), flip=True)  # the same box drawn
        assert np.array_equal(flipped, plain) != np.array_equal(flipped, plain[:, ::-1])
        mirrored += np.array_equal(flipped, plain[:, ::-1])
    assert 10 <= mirrored <= 30
    assert np.array_equal(decode_crop(png.getvalue(), 16, "RGB", flip=True), decode_crop(png.getvalue(), 16, "RGB"))


def test_the_image_cache_keeps_each_resize_apart(tmp_path):
    """folder.py's cache key lost `+ (f"-{resize}px" if resize else "")`: a folder loaded at --image-size 16 came
    back at 16 px when asked for 24 (the first size's cache read back); no test loaded one folder at two sizes."""
    root = write_png_folder(tmp_path / "imgs", per_class=3, size=12, classes=("a", "b"))
    for size in (16, 24, 16):
        assert load_data(str(root), loader="cache", image_size=size).train.images.shape[-2:] == (size, size)
    assert load_data(str(root), loader="cache").train.images.shape[-2:] == (12, 12)


def test_a_cache_made_skipping_bad_images_does_not_skip_them_for_a_load_without(tmp_path):
    """folder.py's cache key lost `-skip{int(skip_bad_images)}`: after one --skip-bad-images run, a run without the
    flag read that cache and trained without the unreadable file instead of stopping to name it."""
    root = write_png_folder(tmp_path / "imgs", per_class=3, size=12, classes=("a", "b"))
    (root / "train" / "a" / "bad.png").write_bytes(b"not a png")
    assert len(load_data(str(root), loader="cache", skip_bad_images=True).train) == 6
    with pytest.raises(DataError, match=r"bad\.png cannot be decoded .*pass `skip_bad_images`"):
        load_data(str(root), loader="cache")


def test_an_image_rewritten_at_the_same_size_is_decoded_anew(tmp_path):
    """folder.py's folder hash `{name}|{st.st_size}|{st.st_mtime_ns}` lost the mtime: an image edited in place to the
    same byte size (a BMP of the same shape) left the cache stale, its old pixels trained on."""
    root = write_png_folder(tmp_path / "imgs", per_class=3, size=12, classes=("a", "b"))
    path = root / "train" / "a" / "x.bmp"
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(path)
    before = load_data(str(root), loader="cache").train.images
    stat = path.stat()
    Image.fromarray(np.full((12, 12, 3), 255, np.uint8)).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # (as a later edit: whatever the clock's grain)
    assert path.stat().st_size == stat.st_size
    after = load_data(str(root), loader="cache").train.images
    white = lambda images: int((images == 255).flatten(1).all(1).sum())  # noqa: E731
    assert (white(before), white(after)) == (0, 1)
