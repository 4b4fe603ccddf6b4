"""Shared fixtures: small real data and paths to the optional shared CIFAR-10 tar."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from convolab import _registry, create_model
from convolab.cli import main
from convolab.training import Trainer, TrainingInterrupted, load_checkpoint

SHARED_CIFAR_TAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.hookimpl(optionalhook=True)  # (a hook of pytest-xdist: unknown to a pytest without it)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): one test process per core, at most 4 (each holds torch and its models)."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4))


def pytest_configure(config):
    """Under pytest-xdist each test process takes its share of the cores: two processes of two torch threads each
    on two cores spin-wait on each other (several times slower than one thread each)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Image caches and the model catalogue's of tests go to a temporary folder, never the user's."""
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path_factory.getbasetemp() / "image-cache"))  # (read at each load)
    monkeypatch.setenv("CONVOLAB_CATALOG_CACHE", str(tmp_path_factory.getbasetemp() / "catalog-cache"))


@pytest.fixture
def fresh_registry():
    """The test registers into a copy of the model registry: nothing it registers outlives it (modules that
    register say `pytestmark = pytest.mark.usefixtures("fresh_registry")` or take it)."""
    entries, aliases = _registry._ENTRIES, _registry._ALIASES
    _registry._ENTRIES, _registry._ALIASES = dict(entries), dict(aliases)
    yield
    _registry._ENTRIES, _registry._ALIASES = entries, aliases


@pytest.fixture(scope="module")
def one_thread():
    """Small-input passes are bound by per-op overhead: one thread avoids spin-waiting on a busy CPU
    (modules that want it say `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """lenet5_modern trained for one epoch on the digits: a real run folder (one a test module)."""
    out = tmp_path_factory.mktemp("digits") / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def cifar_tar() -> Path:
    if not SHARED_CIFAR_TAR.is_file():
        pytest.skip(f"the shared CIFAR-10 tar is not at {SHARED_CIFAR_TAR} (only on development machines)")
    return SHARED_CIFAR_TAR


def evaluated_alike(run_dir: Path, export: Path, capsys) -> tuple[dict, dict]:
    """`convolab evaluate --json` on the digits of a run folder and of its export: the two objects."""
    assert main(["evaluate", str(run_dir), "--data", "digits", "--json"]) == 0
    from_checkpoint = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(export), "--data", "digits", "--json"]) == 0
    return from_checkpoint, json.loads(capsys.readouterr().out)


def resnet20_with_batch_norm_statistics() -> torch.nn.Module:
    """resnet20 in eval mode whose 19 batch norms hold statistics and scales of their own (seeded): a fold that
    dropped one would change its outputs."""
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2), bn.running_var.uniform_(0.5, 1.5), bn.weight.uniform_(0.5, 1.0)
    return model


class DataDependent(torch.nn.Module):
    """A branch on the values of its input: traced as one path by TorchScript, refused by torch.export (the exports'
    tests: one line where a model cannot be captured)."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x.flatten(1))
        return y * 2 if y.sum() > 0 else y


def write_png_folder(root: Path, per_class: int = 6, size: int = 12, classes=("a", "b", "c"),
                     mode: str = "RGB", split_dirs: bool = True) -> Path:
    """A small image folder of real PNG files whose class is readable from the pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in (("train", "test") if split_dirs else ("",)):
        for k, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = np.full((size, size, 3), 40 + 80 * k, dtype=np.uint8)
                noise = rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
                img = Image.fromarray(base + noise)
                (img.convert("L") if mode == "L" else img).save(folder / f"{i}.png")
    return root


def signal_after_step(trainer, step: int) -> None:
    """`trainer` records a SIGTERM (as its signal handler would) when it has taken optimizer step `step`."""
    original = trainer.train_step

    def step_then_signal(*args):
        out = original(*args)
        if trainer.step == step:
            trainer._stop_signal = signal.SIGTERM
        return out

    trainer.train_step = step_then_signal


HISTORY_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "step")  # what a resumed run must repeat


def stopped_mid_epoch_and_resumed(cut, step: int) -> list[list]:
    """Stop trainer `cut` by a SIGTERM after optimizer step `step`, check that its last.pt holds part of an
    epoch, resume the run from it, and return the finished run's history (HISTORY_KEYS of each epoch)."""
    signal_after_step(cut, step)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    assert 0 < load_checkpoint(cut.run_dir / "last.pt")["batch_in_epoch"] < cut.steps_per_epoch
    return history_of(Trainer.resume(cut.run_dir).fit().history)


def history_of(rows: list[dict]) -> list[list]:
    return [[row[k] for k in HISTORY_KEYS] for row in rows]


def signal_after_first_epoch(command: list[str], run_dir: Path, signum: int, env: dict | None = None,
                             process_group: bool = False) -> tuple[int, bytes]:
    """Start `command --output run_dir`, send `signum` once epoch 1's metrics exist (to the whole process
    group if asked, as Ctrl-C does), and return the exit code and stderr."""
    proc = subprocess.Popen(command + ["--output", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=process_group)
    metrics = run_dir / "metrics.csv"
    deadline = time.time() + 600
    while not metrics.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    (os.killpg if process_group else os.kill)(proc.pid, signum)  # epoch 1 just ended: it lands in epoch 2
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random BN affine and running statistics, so that a mismatched BN mapping between two
    implementations cannot pass an output comparison; the model in eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def offline_caches(tmp_path, monkeypatch) -> Path:
    """TORCH_HOME and HF_HOME in tmp_path, empty; the network never asked (test_pretrained, the verbs' --pretrained)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("CONVOLAB_OFFLINE", "1")
    return tmp_path
