"""Honest timing columns, named recipes, test-time flip, the sync-free flip, the fused EMA update and
the parallel decode into the image cache."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import signal_after_step, write_png_folder

import convolab.data.folder as folder
from convolab import create_model
from convolab.cli import main
from convolab.data import load_data, per_class_subset
from convolab.data.augment import AugmentConfig, BatchTransform, random_flip
from convolab.errors import ConfigError, FieldError
from convolab.reproduce.experiments import HE_CIFAR
from convolab.training import TrainConfig, Trainer, evaluate
from convolab.training.engine import TrainingInterrupted
from convolab.training.metrics import read_metrics, read_steps
from convolab.training.optim import ModelEma, lr_factor
from convolab.training.recipes import RECIPES, recipe_values


def test_every_epoch_names_what_its_times_cover(tmp_path):
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=2, batch_size=64, progress=False,
                         output=str(tmp_path / "run"))
    result = Trainer(config).fit()
    rows = read_metrics(result.run_dir)
    assert len(rows) == 2
    for row, kept in zip(rows, result.history):
        for key in ("train_seconds", "eval_seconds", "epoch_seconds", "elapsed_seconds", "wall_seconds"):
            assert row[key] > 0, key
        assert row["epoch_seconds"] == pytest.approx(row["train_seconds"] + row["eval_seconds"])
        assert row["images_per_second"] == pytest.approx(kept["images_per_second"])
        # the command's clock runs over data loading and every epoch's steps and evaluation
        assert row["elapsed_seconds"] > row["wall_seconds"]
    assert rows[1]["elapsed_seconds"] > rows[0]["elapsed_seconds"] + rows[1]["epoch_seconds"] * 0.99
    assert rows[1]["wall_seconds"] == pytest.approx(rows[0]["train_seconds"] + rows[1]["train_seconds"])


def test_the_he_cifar_recipe_is_the_papers_schedule_and_the_degradation_experiments(tmp_path, capsys):
    """He et al. 2015, 4.2: lr 0.1, divided by 10 at 32k and 48k iterations, 64k in all, batch 128, weight decay 1e-4,
    momentum 0.9; `convolab reproduce degradation` trains by the same values."""
    he = RECIPES["he-cifar"].values
    assert HE_CIFAR == he
    steps = he["epochs"] * (50_000 // he["batch_size"])  # 164 epochs of 390 steps
    assert steps == 63_960
    factors = [lr_factor(s, steps, he["schedule"]) for s in (0, 31_979, 31_980, 47_969, 47_970, steps - 1)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert main(["train", "--help"]) == 0  # (its help's "50%" broke argparse's %-formatting: a traceback)
    assert "he-cifar: He et al.'s CIFAR-10 ResNets" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--recipe", "he-cifar", "--epochs", "1",
                 "--no-progress", "--output", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert {k: config[k] for k in he if k != "epochs"} == {k: v for k, v in he.items() if k != "epochs"}


def test_a_recipe_fills_only_the_options_not_given(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "lenet5_modern", "--data", "digits", "--recipe", "fast", "--epochs", "1", "--batch-size",
                 "128", "--lr", "0.05", "--no-nesterov", "--no-progress", "--output", str(run)])
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    # given on the command line: kept (a switch the recipe turns on can be turned off)
    assert (config["epochs"], config["batch_size"], config["lr"], config["nesterov"]) == (1, 128, 0.05, False)
    # not given: the recipe's
    fast = RECIPES["fast"].values
    for key in ("optimizer", "weight_decay", "schedule", "warmup_epochs", "label_smoothing"):
        assert config[key] == fast[key], key
    assert fast["tta"] == "auto" and config["tta"] == "none"  # (recorded as it became: grey digits, no flip)
    assert config["recipe"] == "fast"
    assert recipe_values("fast", {"lr", "epochs"}).keys() == fast.keys() - {"lr", "epochs"}
    with pytest.raises(ConfigError, match="`recipe` 'slow' is not a recipe"):
        recipe_values("slow")


def test_a_recipe_named_from_python_is_applied_by_from_recipe_and_refused_unapplied(tmp_path):
    """TrainConfig(recipe="fast") recorded the recipe and trained at none of its values (adamw at 0.01, batch 64)."""
    with pytest.raises(FieldError, match=r"'fast' is named, but none of its values \(epochs=40, batch_size=512.*"
                                         r"TrainConfig.from_recipe\('fast', ...\)") as refused:
        TrainConfig(model="lenet5_modern", data="digits", recipe="fast")
    assert refused.value.field == "recipe"
    config = TrainConfig.from_recipe("fast", model="lenet5_modern", data="digits", epochs=1, label_smoothing=0.0)
    fast = RECIPES["fast"].values
    assert {k: getattr(config, k) for k in fast if k not in ("epochs", "label_smoothing")} == \
        {k: v for k, v in fast.items() if k not in ("epochs", "label_smoothing")}
    assert (config.epochs, config.label_smoothing, config.recipe) == (1, 0.0, "fast")  # (given: kept)
    assert TrainConfig.from_dict(config.to_dict()) == config  # (config.json read back: applied, so taken)


def test_an_abbreviated_option_counts_as_given(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--recipe", "fast", "--epoch", "1",
                 "--batch-size", "256", "--no-progress", "--output", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["epochs"] == 1


def test_test_time_flip_scores_the_mean_of_image_and_mirror():
    torch.manual_seed(0)
    data = load_data("digits")
    model = create_model("lenet5_modern", num_classes=10, in_chans=1).eval()
    transform = BatchTransform(1, (28, 28), (0.5,), (0.25,), AugmentConfig())
    images, labels = data.test.images[:50], data.test.labels[:50]
    plain = evaluate(model, images, labels, transform, 16, torch.device("cpu"), return_logits=True)
    flipped = evaluate(model, images.flip(3), labels, transform, 16, torch.device("cpu"), return_logits=True)
    both = evaluate(model, images, labels, transform, 16, torch.device("cpu"), return_logits=True, tta="flip")
    torch.testing.assert_close(both["logits"], (plain["logits"] + flipped["logits"]) / 2)
    assert both["acc"] == pytest.approx((both["logits"].argmax(1) == labels).float().mean().item())
    with pytest.raises(ConfigError, match="tta must be one of none, flip"):
        TrainConfig(model="lenet5", tta="crop")


def test_random_flip_mirrors_about_half_the_images_and_no_other_change():
    x = torch.randint(0, 256, (200, 3, 5, 7), dtype=torch.uint8)
    out = random_flip(x, torch.Generator().manual_seed(3))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 70 < int(mirrored.sum()) < 130
    again = random_flip(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # the generator alone decides


def test_fused_ema_update_equals_the_per_tensor_one():
    torch.manual_seed(0)
    model = create_model("lenet5_bn", num_classes=10, in_chans=1)
    ema = ModelEma(model, 0.9)
    expected = copy.deepcopy(ema.module.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()
    model(torch.randn(8, 1, 28, 28))  # moves BN statistics and num_batches_tracked
    ema.update(model)
    for key, value in model.state_dict().items():
        want = expected[key].lerp(value, 0.1) if value.dtype.is_floating_point else value
        torch.testing.assert_close(ema.module.state_dict()[key], want)


def test_the_parallel_decode_fills_the_same_cache_as_one_process(tmp_path, monkeypatch):
    write_png_folder(tmp_path / "imgs", per_class=30, size=10)
    monkeypatch.setattr(folder, "PARALLEL_DECODE_MIN", 10**9)
    one = load_data(str(tmp_path / "imgs"), loader="cache")
    monkeypatch.setattr(folder, "PARALLEL_DECODE_MIN", 1)
    monkeypatch.setattr(folder, "DECODE_CHUNK", 7)  # several chunks, the last one short
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "other-cache"))
    many = load_data(str(tmp_path / "imgs"), loader="cache")
    assert torch.equal(one.train.images, many.train.images) and torch.equal(one.test.images, many.test.images)
    assert torch.equal(one.train.labels, many.train.labels)


def test_steps_csv_holds_training_error_every_10_steps_and_resumes_exactly(tmp_path):
    def config(name):
        return TrainConfig(model="lenet5_modern", data="digits", epochs=2, batch_size=32, progress=False,
                           output=str(tmp_path / name))

    whole = Trainer(config("whole"))
    result = whole.fit()
    steps = read_steps(result.run_dir)
    per_epoch = -(-whole.steps_per_epoch // 10)  # a row each 10 steps and one at the epoch's end
    assert len(steps) == 2 * per_epoch
    assert [r["step"] for r in steps[:2]] == [10, 20] and steps[per_epoch - 1]["epoch"] == 1.0
    for row in steps:
        assert row["train_error"] == pytest.approx(1 - row["train_acc"])
    for epoch, summary in enumerate(result.history):  # the epoch's figures are the images-weighted steps'
        rows = steps[epoch * per_epoch:(epoch + 1) * per_epoch]
        images = sum(r["images"] for r in rows)
        assert summary["train_loss"] == pytest.approx(sum(r["train_loss"] * r["images"] for r in rows) / images)
    cut = Trainer(config("cut"))
    signal_after_step(cut, whole.steps_per_epoch + 15)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    Trainer.resume(tmp_path / "cut").fit()
    assert (tmp_path / "cut" / "steps.csv").read_text() == (tmp_path / "whole" / "steps.csv").read_text()


def test_train_and_test_subsets_take_every_class_alike_and_the_same_images(tmp_path):
    labels = torch.tensor([0] * 5 + [1] * 100 + [2] * 100)
    index = per_class_subset(labels, 30)
    assert torch.bincount(labels[index]).tolist() == [5, 13, 12]  # the small class gives all it has
    assert torch.equal(index, per_class_subset(labels, 30)) and torch.equal(index, index.sort().values)
    assert len(per_class_subset(labels, 999)) == len(labels)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--train-subset", "200", "--test-subset", "100",
                 "--epochs", "1", "--no-progress", "--output", str(run)]) == 0
    trainer = Trainer.resume(run)
    assert (len(trainer.train_labels), len(trainer.test_labels)) == (200, 100)
    assert torch.bincount(trainer.train_labels.cpu()).tolist() == [20] * 10
