"""The training engine: real runs on the embedded digits, checkpoints, exact resume, bad states."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import signal_after_first_epoch, signal_after_step

from convolab.cli import main
from convolab.errors import CheckpointError
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.engine import NonFiniteLoss, TrainingInterrupted
from convolab.training.optim import lr_factor
from convolab.training.state import RunState


def quick_config(tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(model="lenet5_modern", data="digits", epochs=2, batch_size=32, output=str(tmp_path / "run"),
                  progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def test_lenet5_modern_learns_mnist5k_in_three_epochs(tmp_path):
    result = Trainer(TrainConfig(model="lenet5_modern", epochs=3, output=str(tmp_path / "run"),
                                 progress=False)).fit()
    assert result.test_acc >= 0.93, result.history
    run = result.run_dir
    for name in ("config.json", "metrics.csv", "metrics.json", "last.pt", "best.pt", "curves.png"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr,train_loss,train_acc,test_loss,test_acc") and len(rows) == 4


def test_checkpoint_loads_with_weights_only_and_names_the_model(tmp_path):
    result = Trainer(quick_config(tmp_path, model="lenet5", epochs=1, model_options={"img_size": 12})).fit()
    state = torch.load(result.run_dir / "best.pt", weights_only=True)
    assert state["model_name"] == "lenet5" and state["classes"] == [str(i) for i in range(10)]
    assert state["model_options"] == {"img_size": 12} and state["in_chans"] == 1
    assert state["image_size"] == [12, 12]


def test_resume_after_interruption_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    config = quick_config(tmp_path, epochs=3, output=str(tmp_path / "whole"))
    whole = Trainer(config).fit().history

    interrupted = Trainer(quick_config(tmp_path, epochs=3, output=str(tmp_path / "cut")))
    signal_after_step(interrupted, interrupted.steps_per_epoch + 15)  # in the middle of epoch 2
    with pytest.raises(TrainingInterrupted, match=r"continue with: Trainer\.resume\('"):
        interrupted.fit()
    saved = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert saved["epoch"] == 1 and 0 < saved["batch_in_epoch"] < interrupted.steps_per_epoch
    resumed = Trainer.resume(tmp_path / "cut").fit().history
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in whole]


def test_a_stop_signal_is_honoured_before_the_next_step(tmp_path):
    cut = Trainer(quick_config(tmp_path, epochs=2, output=str(tmp_path / "cut")))
    signal_after_step(cut, 3)  # between two folds of the running sums (every 10 steps)
    with pytest.raises(TrainingInterrupted, match=r"continue with: Trainer\.resume\('"):
        cut.fit()
    saved = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert saved["step"] == 4 and saved["pending"]["seen"] > 0  # the sums since the last fold are kept


def test_a_second_signal_stops_at_once(tmp_path):
    trainer = Trainer(quick_config(tmp_path, epochs=2, output=str(tmp_path / "run")))
    original = trainer.train_step

    def step_then_two_signals(*args):
        out = original(*args)
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the first asks to save and stop before the next step,
            os.kill(os.getpid(), signal.SIGINT)  # a copy of it within the second changes nothing,
            time.sleep(1.05)
            os.kill(os.getpid(), signal.SIGINT)  # the second, later, stops at once
        return out

    trainer.train_step = step_then_two_signals
    with pytest.raises(TrainingInterrupted, match="stopped at once by a second signal"):
        trainer.fit()
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing was being written: nothing half-written


@pytest.mark.slow  # (18 s; the same stop-and-resume by a real SIGINT runs by default in test_stream.py and
# test_distributed.py; SIGTERM takes the same handler, and its stop and resume run in-process here)
def test_a_real_sigterm_mid_run_then_resume_gives_the_same_final_metrics(tmp_path):
    base = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", "digits", "--epochs", "3",
            "--batch-size", "16", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # (left to itself, each command picks its threads by the load)
    subprocess.run(base + ["--output", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600,
                   env=env)
    returncode, err = signal_after_first_epoch(base, tmp_path / "cut", signal.SIGTERM, env=env)
    assert returncode == 143 and b"convolab train --resume" in err, err.decode()  # (128 + SIGTERM, as shells give)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] < 3
    resumed = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(tmp_path / "cut"),
                              "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    whole_rows = (tmp_path / "whole" / "metrics.csv").read_text().splitlines()
    cut_rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()

    def metric_columns(rows):
        return [r.split(",")[:7] for r in rows]

    assert len(cut_rows) == 4 and metric_columns(cut_rows) == metric_columns(whole_rows)


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(quick_config(tmp_path, epochs=3))
    original_step = trainer.train_step

    def poisoned(x, y, *rest):
        if trainer.epoch == 1:
            x = x * float("nan")
        return original_step(x, y, *rest)

    trainer.train_step = poisoned
    with pytest.raises(NonFiniteLoss, match="lower `lr`"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_a_loss_gone_nan_in_the_first_epoch_leaves_no_run_behind_so_the_same_folder_takes_a_lower_lr(tmp_path):
    with pytest.raises(NonFiniteLoss, match="nothing was saved, so .* can take the new run"):
        Trainer(quick_config(tmp_path, epochs=1, optimizer="sgd", lr=1e4, warmup_epochs=0)).fit()
    assert not (tmp_path / "run" / "config.json").exists()
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05",
                 "--output", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "last.pt").is_file()


def test_rmsprop_learns_at_its_default_rate(tmp_path):
    # eps 1.0 (Inception-v3's) makes each step about lr x gradient: 1e-3 learned nothing in 5 epochs
    result = Trainer(quick_config(tmp_path, epochs=2, optimizer="rmsprop")).fit()
    assert result.test_acc > 0.6, result.history


def test_aux_weight_on_a_model_without_auxiliary_heads_is_said_to_be_unused(tmp_path, caplog):
    Trainer(quick_config(tmp_path, epochs=1, aux_weight=0.5, train_subset=64, test_subset=32)).fit()
    assert "`aux_weight` 0.5 is not used: lenet5_modern has no auxiliary heads" in caplog.text


def test_data_built_in_python_with_a_label_past_its_classes_or_no_test_images_is_refused(tmp_path):
    from convolab.data import ImageData, Split
    from convolab.errors import DataError

    def split(n: int, classes: int) -> Split:
        return Split(torch.zeros(n, 1, 28, 28, dtype=torch.uint8), torch.arange(n) % classes)

    with pytest.raises(DataError, match=r"^toy: the train split has label 2, outside the 2 classes"):
        ImageData("toy", split(64, 3), split(16, 2), ["a", "b"])
    with pytest.raises(DataError, match=r"^toy has no test images"):
        Trainer(quick_config(tmp_path, data="toy"), data=ImageData("toy", split(64, 2), split(0, 2), ["a", "b"]))


def test_a_checkpoint_of_a_model_no_registry_names_says_so(tmp_path, capsys):
    from convolab.models.lecture import ResNetMnist

    model = ResNetMnist(10, 1)
    model.model_name = ""  # a network of the user's own, given to the Trainer
    Trainer(quick_config(tmp_path, epochs=1, train_subset=64, test_subset=32), model=model).fit()
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "holds a model of no registered name (built outside convolab.register_model" in capsys.readouterr().err
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    torch.save({**checkpoint, "model_name": "mynet"}, tmp_path / "run" / "last.pt")
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2"]) == 2
    assert "holds a model named 'mynet', which is not registered here" in capsys.readouterr().err


def test_the_early_stop_line_says_what_min_delta_asked():
    from convolab.training.loop import no_gain

    assert no_gain("test_loss", 0.5, 1) == "test_loss gained no more than `min_delta` 0.5 for 1 epoch (judged on " \
        "the test images)"
    assert no_gain("test_acc", 0.0, 3) == "test_acc did not improve for 3 epochs (judged on the test images)"


def test_a_run_saved_on_a_device_of_another_kind_resumes_with_a_fresh_augmentation_stream(tmp_path, caplog):
    Trainer(quick_config(tmp_path, epochs=1, train_subset=64, test_subset=32)).fit()
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    # a CUDA generator's state (16 bytes), as a run trained on a GPU saves it, does not fit the CPU's generator
    torch.save({**checkpoint, "rng_aug": torch.zeros(16, dtype=torch.uint8)}, tmp_path / "run" / "last.pt")
    resumed = Trainer.resume(tmp_path / "run", epochs=2)
    assert "the augmentation stream was saved on a device of another kind" in caplog.text
    assert resumed.fit().history[-1]["epoch"] == 2


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    trainer = Trainer(quick_config(tmp_path, epochs=10, patience=1, min_delta=0.5))
    result = trainer.fit()
    assert result.stopped_early and len(result.history) == 2


def test_monitor_picks_best_pt_by_the_figure_it_names_lower_loss_and_mae_better():
    state = RunState()
    for epoch, (acc, loss, mae) in enumerate([(0.5, 1.0, 3.0), (0.7, 1.2, 2.0), (0.6, 0.8, 2.5)], 1):
        state.end_epoch({"epoch": epoch, "test_acc": acc, "test_loss": loss, "test_mae_age": mae}, 0.0, "test_loss")
    assert (state.best_epoch, state.best_score, state.best_acc, state.epochs_since_best) == (3, 0.8, 0.6, 0)
    state = RunState()
    improved, waited = [], []
    for e, m in enumerate([3.0, 2.95, 2.5, 2.45, float("nan")], 1):
        improved.append(state.end_epoch({"epoch": e, "test_acc": 0.5, "test_mae_age": m}, 0.1, "test_mae_age"))
        waited.append(state.epochs_since_best)
    # best.pt follows every new best; --patience counts from the last gain of more than --min-delta (0.1), as
    # Lightning's ModelCheckpoint and EarlyStopping do
    assert improved == [True, True, True, True, False] and state.best_epoch == 4 and state.best_score == 2.45
    assert waited == [0, 1, 0, 1, 2]
    state = RunState.from_state_dict({"best_acc": 0.9, "best_epoch": 4})  # a checkpoint from before --monitor
    assert not state.end_epoch({"epoch": 5, "test_acc": 0.85}, 0.0) and state.best_epoch == 4


def test_best_pt_and_patience_follow_monitor_test_loss(tmp_path):
    result = Trainer(quick_config(tmp_path, epochs=4, monitor="test_loss", patience=4)).fit()
    losses = [row["test_loss"] for row in result.history]
    best = losses.index(min(losses)) + 1
    assert result.best_epoch == best and load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == best
    assert result.best_acc == result.history[best - 1]["test_acc"]


def test_truncated_and_foreign_checkpoints_get_clear_errors(tmp_path):
    result = Trainer(quick_config(tmp_path, epochs=1)).fit()
    data = (result.run_dir / "last.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a convolab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("schedule", ["constant", "step", "multistep", "cosine", "onecycle"])
def test_schedules_are_pure_functions_of_the_step_with_linear_warmup(schedule):
    total, warmup = 100, 10
    values = [lr_factor(s, total, schedule, warmup) for s in range(total)]
    assert values[:warmup] == [(s + 1) / warmup for s in range(warmup)]
    assert values == [lr_factor(s, total, schedule, warmup) for s in range(total)]
    assert all(0 <= v <= 1 for v in values)
    if schedule != "constant":
        assert values[-1] < values[warmup]


def test_weight_decay_skips_norm_and_bias_unless_asked(tmp_path):
    trainer = Trainer(quick_config(tmp_path, model="resnet_mnist", epochs=1))
    decayed, free = trainer.optimizer.param_groups
    assert decayed["weight_decay"] > 0 and free["weight_decay"] == 0
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])


def test_config_json_records_the_resolved_run(tmp_path):
    result = Trainer(quick_config(tmp_path, epochs=1)).fit()
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["model"] == "lenet5_modern" and config["resolved"]["lr"] == 2e-3
    assert config["resolved"]["device"] == "cpu" and config["resolved"]["steps_per_epoch"] == 1438 // 32
