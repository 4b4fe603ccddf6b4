"""What users of macOS and Windows meet (found by a tester emulating them on Linux): Python's spawn start method,
path separators, and the failures that come with them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import write_png_folder

import convolab.data
from convolab.data import archive, folder, load_data
from convolab.data.folder import load_image_folder
from convolab.data.stream import StreamingImageData, started
from convolab.errors import DataError
from convolab.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def test_a_script_without_a_main_guard_under_spawn_is_told_so_and_leaves_no_run_folders(tmp_path):
    """Spawn (macOS, Windows) imports the script again in each DataLoader worker: before, each worker made a
    Trainer of its own (stray runs/ folders), the first one said the folder was in use by the script itself, and
    the config.json left behind refused the corrected script."""
    write_png_folder(tmp_path / "imgs", per_class=4)
    (tmp_path / "noguard.py").write_text(textwrap.dedent("""
        import multiprocessing
        multiprocessing.set_start_method("spawn", force=True)
        from convolab.training import TrainConfig, Trainer
        Trainer(TrainConfig(model="lenet5_modern", data="imgs", epochs=1, loader="stream", workers=1, batch_size=4,
                            output="run", progress=False, threads=1)).fit()
    """))
    done = subprocess.run([sys.executable, "noguard.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode != 0
    # (the worker says its line alone and ends: before, it was the last line of a traceback of 40)
    assert ("a Trainer was made while a new process imported the script that makes it (as spawn, the start method "
            "of macOS and Windows, starts each DataLoader worker): put the script's work under "
            '`if __name__ == "__main__":`') in done.stderr.splitlines()
    assert "in use by another convolab command" not in done.stderr and "ConfigError" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "noguard.py"]  # (no run, no runs/)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_config_behind(tmp_path, monkeypatch):
    """Any failure before the first checkpoint (before: only a NaN loss or unreadable data) lets the same command
    start again in the folder, instead of refusing it as holding a run of nothing but its config.json."""
    def fault(*args, **kwargs):
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")

    monkeypatch.setattr(Trainer, "train_step", fault)
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(tmp_path / "run"), progress=False)
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        Trainer(config).fit()
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    Trainer(config).fit()  # (the same call again)
    assert (tmp_path / "run" / "last.pt").is_file()


class _SigintAtStart(torch.utils.data.Dataset):
    """Each item: whether the worker process that unpickled this dataset (at its start, before any worker_init_fn)
    ignored SIGINT then (plain `iter(loader)`: False, Python's default handler)."""

    def __init__(self):
        self.size = 2  # (some state: an object without any is unpickled without __setstate__)

    def __len__(self) -> int:
        return self.size

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ignored_at_start = signal.getsignal(signal.SIGINT) == signal.SIG_IGN

    def __getitem__(self, i: int) -> bool:
        return self.ignored_at_start


def test_workers_that_spawn_starts_ignore_ctrl_c_from_their_first_instruction():
    """A Ctrl-C while spawn's workers imported torch (seconds, at each loader's first pass) killed them with a
    traceback and the run's state unsaved; `started` starts them ignoring it (the main process stops and saves)."""
    loader = torch.utils.data.DataLoader(_SigintAtStart(), num_workers=1, batch_size=None,
                                         multiprocessing_context="spawn")
    assert list(started(loader)) == [True, True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (this process's own, as it was)


def test_a_streamed_runs_test_passes_keep_their_workers_from_epoch_to_epoch(tmp_path, monkeypatch):
    """Before, each epoch's test pass started new workers: under spawn, seconds of importing torch an epoch (45 s
    against 10 s for three epochs of 24 images), and a window for a Ctrl-C to kill them."""
    made = []
    real = StreamingImageData.eval_loader

    def counted(self, *args, **kwargs):
        made.append(kwargs.get("persistent"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StreamingImageData, "eval_loader", counted)
    write_png_folder(tmp_path / "imgs", per_class=4)
    Trainer(TrainConfig(model="lenet5_modern", data=str(tmp_path / "imgs"), epochs=3, loader="stream", workers=1,
                        batch_size=4, output=str(tmp_path / "run"), progress=False)).fit()
    assert made == [True]  # one loader for the three test passes, its workers kept (and shut down at the end)


def test_names_joined_on_windows_read_with_slashes_as_on_linux(monkeypatch):
    """On Windows a folder's image was named `train\\cat\\0.png`, so it lay in no class folder: no image folder
    could be read there."""
    assert archive.joined("train/cat", "0.png") == "train/cat/0.png" and archive.joined(".", "0.png") == "0.png"
    monkeypatch.setattr(archive.os, "sep", "\\")  # (what os.path.relpath gives on Windows)
    assert archive.joined("train\\cat", "0.png") == "train/cat/0.png"


def test_the_decoding_pool_forks_on_linux_alone_and_decodes_the_same_when_spawned(tmp_path, monkeypatch):
    """On macOS fork can crash the children (Python's docs); the pool is spawned there, and decodes as forked."""
    monkeypatch.setattr(folder.sys, "platform", "darwin")
    assert folder.pool_start_method() == "spawn"
    monkeypatch.undo()
    assert folder.pool_start_method() == "fork"
    root = write_png_folder(tmp_path / "imgs", per_class=6)
    monkeypatch.setattr(folder, "PARALLEL_DECODE_MIN", 4)  # (the pool from 4 images, not 4,096)
    monkeypatch.setattr(folder.os, "cpu_count", lambda: 2)
    forked = load_image_folder(root, loader="cache")
    monkeypatch.setattr(folder, "pool_start_method", lambda: "spawn")
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "other-cache"))
    spawned = load_image_folder(root, loader="cache")
    assert torch.equal(forked.train.images, spawned.train.images) and torch.equal(forked.test.images,
                                                                                    spawned.test.images)


def test_a_missing_data_path_with_slashes_is_a_missing_path_on_windows_too(tmp_path, monkeypatch):
    monkeypatch.setattr(convolab.data.os, "sep", "\\")  # (Windows': `/` is its altsep)
    with pytest.raises(DataError, match="does not exist"):
        load_data(str(tmp_path / "photos" / "cats").replace("\\", "/"))
