"""What users of macOS and Windows meet (found by a tester emulating them on Linux): Python's spawn start method,
path separators, and the failures that come with them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import write_png_folder

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
    assert ("a Trainer was made while a new process imported the script that makes it (as spawn, the start method "
            "of macOS and Windows, starts each DataLoader worker): put the script's work under "
            '`if __name__ == "__main__":`') in done.stderr
    assert "in use by another convolab command" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "noguard.py"]  # (no run, no runs/)


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_config_behind(tmp_path, monkeypatch):
    """Any failure before the first checkpoint (before: only a NaN loss or unreadable data) lets the same command
    start again in the folder, instead of refusing it as holding a run of nothing but its config.json."""
    def fault(*args, **kwargs):
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")

    monkeypatch.setattr(Trainer, "_train_step", fault)
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(tmp_path / "run"), progress=False)
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        Trainer(config).fit()
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    Trainer(config).fit()  # (the same call again)
    assert (tmp_path / "run" / "last.pt").is_file()
