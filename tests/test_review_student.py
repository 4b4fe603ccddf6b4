"""Review by a student reproducing the articles: a verdict's reason follows from the figures it prints, the
curves by step say what each point averages, the warm-up's iterations as counted, a resumed run's epoch lines
that do not contradict themselves, and an experiment run on other data than its claim's judges nothing."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import matplotlib.figure
import pytest
from conftest import signal_after_step

from convolab.cli import main
from convolab.reproduce import EXPERIMENTS, arm_configs, get_experiment, plot_experiment
from convolab.reproduce.experiments import HE_110_WARMUP, Outcome, batchnorm_verdict
from convolab.training import TrainConfig, Trainer, TrainingInterrupted, metrics
from convolab.training.build import epoch_lengths
from convolab.training.metrics import read_metrics, write_metrics
from convolab.training.optim import warmup_length

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def digits_batchnorm(tmp_path_factory) -> Path:
    """`convolab reproduce batchnorm --quick --data digits --threads 1`: 5 steps an epoch, 3 epochs an arm."""
    out = tmp_path_factory.mktemp("bn") / "digits"
    assert main(["reproduce", "batchnorm", "--quick", "--data", "digits", "--threads", "1", "--no-progress",
                 "--output", str(out)]) == 0
    return out


def one_row(held: list[dict], run: str) -> dict:
    return next(r for r in held if r["run"] == run)


# ----- 1. the batchnorm verdict's reason follows from its figures --------------------------------------------
def test_batchnorm_verdict_says_lenet5_bn_fit_its_training_images_where_only_its_test_accuracy_stayed_at_chance():
    # the tester's figures on digits: training accuracy 0.8398, test 0.1198 (said "it did not learn")
    fitted = [{"train_acc": 0.3195, "test_acc": 0.1003}, {"train_acc": 0.8398, "test_acc": 0.1198}]
    ok, line = batchnorm_verdict(Outcome({"lenet5_bn": [fitted], "lenet5_bn-without-bn": [
        [{"train_acc": 0.1016, "test_acc": 0.1003}]]}))
    assert not ok and line.endswith("0.1198 > 0.1003 without its BN layers, but lenet5_bn itself stayed under 0.5 "
                                    "on its test images, though it fit its training images (training error "
                                    "0.1602): not reproduced"), line
    assert "did not learn" not in line


def test_a_digits_batchnorm_report_gives_the_reason_its_table_shows(digits_batchnorm):
    report = json.loads((digits_batchnorm / "reproduce.json").read_text())
    bn = one_row(report["rows"], "lenet5_bn")
    train_error, test_acc = bn["final train error"][0], bn["final test accuracy"][0]
    line = report["verdict"]
    assert test_acc < 0.5 and report["held"] is False, line  # (8x8 digits, 15 steps: its test side at chance)
    if train_error <= 0.5:
        assert f"though it fit its training images (training error {train_error:.4f})" in line, line
        assert "did not learn" not in line
    else:
        assert f"its training error is {train_error:.4f} (it did not learn)" in line, line
    assert (digits_batchnorm / "reproduce.md").read_text().strip().splitlines()[-1] == line


def test_the_readme_says_digits_batchnorm_fit_its_training_images():
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "on data where both arms stay at chance" not in text
    assert "only the test side stays at chance: 0.1198 against 0.1003, while lenet5_bn's training error falls to " \
           "0.1602" in text


# ----- 2. the curves by step say what each point averages --------------------------------------------------
def steps_rows(ends: list[int], per_epoch: int, batch: int = 256) -> list[dict]:
    """steps.csv rows of windows ending at optimizer steps `ends`, epochs of `per_epoch` steps."""
    rows, last = [], 0
    for end in ends:
        epoch = end // per_epoch + (end % per_epoch) / per_epoch if end % per_epoch else end // per_epoch
        rows.append({"step": end, "epoch": float(epoch), "lr": 1.0, "train_loss": 1.0, "train_acc": 0.5,
                     "train_error": 0.5, "images": (end - last) * batch})
        last = end
    return rows


def run_with_steps(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    write_metrics(folder, [], rows)
    return folder


def test_the_step_label_names_an_epoch_s_shorter_last_window(tmp_path):
    # mnist5k's 4,000 images at batch 256: epochs of 15 steps, windows of 10 and 5 (the 5s are drawn)
    mnist5k = run_with_steps(tmp_path / "mnist5k", steps_rows([10, 15, 25, 30, 40, 45], 15))
    assert metrics.steps_label([mnist5k]) == "mean of each 10 steps, 5 at an epoch's end"
    # epochs of 20 steps: every window 10 steps
    assert metrics.steps_label([run_with_steps(tmp_path / "twenty", steps_rows([10, 20, 30, 40], 20))]) == \
        "mean of each 10 steps"
    # epochs of 4 steps: every window is a whole epoch
    assert metrics.steps_label([run_with_steps(tmp_path / "four", steps_rows([4, 8, 12], 4))]) == \
        "mean of each epoch's 4 steps"


def test_reproduce_curves_label_each_point_a_whole_epoch_when_epochs_are_under_10_steps(digits_batchnorm,
                                                                                         monkeypatch):
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, target, **kwargs: saved.append(fig))
    report = json.loads((digits_batchnorm / "reproduce.json").read_text())
    runs = {label: [Path(p) for p in dirs] for label, dirs in report["runs"].items()}
    outcome = Outcome({label: [read_metrics(d) for d in dirs] for label, dirs in runs.items()})
    plot_experiment(get_experiment("batchnorm"), outcome, runs, digits_batchnorm / "again.png")
    steps_ax = saved[-1].axes[0]
    # (1,438 digits at batch 256; the label wrapped in the picture)
    assert " ".join(steps_ax.get_ylabel().split()) == "training error (mean of each epoch's 5 steps)"


# ----- 3. resnet110's warm-up, in iterations as counted ------------------------------------------------------
def test_resnet110_warms_up_for_one_epoch_of_390_steps_as_the_readme_says():
    config = arm_configs(EXPERIMENTS["resnet-cifar"], False, 0, TrainConfig(model="", data="cifar10"))[1]
    assert config.model == "resnet110" and config.warmup_epochs == HE_110_WARMUP["warmup_epochs"]
    _, steps = epoch_lengths(50_000, config.batch_size, config.accumulate)  # (the last partial batch dropped)
    assert warmup_length(config, steps) == steps == 390
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "at 0.01 for an epoch, 390 iterations" in text and "391 iterations" not in text


# ----- 4. a resumed run's epoch lines ------------------------------------------------------------------------
def test_a_run_resumed_mid_epoch_times_its_epoch_lines_since_resuming(tmp_path, caplog):
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=2, batch_size=32, progress=False,
                         output=str(tmp_path / "cut"))
    cut = Trainer(config)
    signal_after_step(cut, cut.steps_per_epoch + 5)  # (stopped in epoch 2, after epoch 1's line)
    caplog.set_level(logging.INFO, logger="convolab")
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM in epoch 2"):
        cut.fit()
    first = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(first) == 1 and first[0].endswith("since start)"), first
    caplog.clear()
    Trainer.resume(tmp_path / "cut").fit()
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(resumed) == 1 and re.search(r"; \d+\.\ds since resuming\)$", resumed[0]), resumed
    rows = read_metrics(tmp_path / "cut")
    assert set(rows[0]) >= {"train_seconds", "epoch_seconds", "elapsed_seconds"}  # (metrics.csv's columns kept)


def test_the_readme_says_what_elapsed_seconds_covers_on_a_resumed_run():
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "a resumed run's since it resumed, while the `train_seconds` and `epoch_seconds` of the epoch it resumed " \
           "in count that epoch's steps before the stop too" in text


# ----- 5. an experiment on other data than its claim's -------------------------------------------------------
def test_lenet_fashion_on_digits_reports_its_runs_but_judges_nothing(tmp_path, capsys, caplog):
    out = tmp_path / "lf"
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["reproduce", "lenet-fashion", "--quick", "--data", "digits", "--threads", "1", "--no-progress",
                 "--output", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("lenet-fashion: on digits, not the claim's Fashion-MNIST: final train error / test "
                           "accuracy lenet5 0."), line
    assert line.endswith("the source's figures are Fashion-MNIST's and do not apply: not judged"), line
    assert "reproduced" not in line and "book 0.815" not in line
    report = (out / "reproduce.md").read_text()
    assert "\nNot the claim's data: on digits, not the claim's Fashion-MNIST" in report
    assert report.strip().splitlines()[-1] == line
    record = json.loads((out / "reproduce.json").read_text())
    assert record["held"] is None and record["verdict"] == line
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("on digits, not the claim's Fashion-MNIST" in m and "not judged" in m for m in said), said


@pytest.mark.parametrize("name, data", [
    ("batchnorm", "mnist5k"), ("batchnorm", "digits"), ("batchnorm", "mnist"),  # (stated of any data)
    ("label-smoothing", "cifar10"), ("label-smoothing", "mnist5k"),
    ("degradation", "cifar10"), ("degradation", "../shared/data/cifar10-jpg.tar.gz"),  # (a CIFAR-10 tar)
    ("resnet-cifar", "/data/cifar10-folder"), ("lecture-mnist", "mnist"), ("lenet-fashion", "fashion-mnist"),
])
def test_the_claim_s_own_data_and_documented_variants_are_judged(name, data):
    assert EXPERIMENTS[name].off_claim(data) == ""


@pytest.mark.parametrize("name, data, said", [
    ("lenet-fashion", "mnist5k", "on mnist5k, not the claim's Fashion-MNIST"),
    ("lenet-fashion", "mnist", "on mnist, not the claim's Fashion-MNIST"),
    ("lecture-mnist", "mnist5k", "on mnist5k, not the claim's MNIST"),
    ("degradation", "mnist5k", "on mnist5k, not the claim's CIFAR-10"),
    ("resnet-cifar", "cifar100", "on cifar100, not the claim's CIFAR-10"),
])
def test_other_named_data_are_not_the_claim_s(name, data, said):
    assert EXPERIMENTS[name].off_claim(data) == said
