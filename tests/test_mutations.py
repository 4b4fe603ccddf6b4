"""Faults a hand-made mutation test of the source showed no test would catch: each test here fails on the mutated
line named in its docstring (a real bug could look like it), and passes on the code as it is."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convolab import create_model
from convolab._atomic import atomic_write
from convolab.analysis import count_params, summary
from convolab.compare import results as results_module
from convolab.compare.seeds import welch_test
from convolab.data import ImageData, Split, load_data
from convolab.data.augment import AugmentConfig, BatchTransform, convert_channels, random_crop
from convolab.data.stream import epoch_permutation
from convolab.export import fold_batchnorm
from convolab.finetune import finetune_trainer
from convolab.training import TrainConfig, load_checkpoint
from convolab.training.checkpoint import checkpoint_model
from convolab.training.evaluation import evaluate
from convolab.training.loop import weighted_loss


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
