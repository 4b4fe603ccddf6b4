"""What a Trainer and lr-find leave behind: no DataLoader workers, threads or `pymp-*` folders once `fit()`
returns, no scratch folder in $TMPDIR from a range test (not even one SIGKILL would strand), and SIGTERM during
lr-find ending as Ctrl-C does."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import write_png_folder

import convolab
from convolab.training import TrainConfig
from convolab.training import lr_find as lr_find_module
from convolab.training.lr_find import lr_range_test


def _env(tmp: Path) -> dict[str, str]:
    """$TMPDIR `tmp`, and the convolab this test imported (not an installed one)."""
    return {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(convolab.__file__).parents[1])}


def _left_in(tmp: Path) -> list[str]:
    """What is left in `tmp`, without torch's compile cache (torch._dynamo makes torchinductor_USER on import)."""
    return sorted(name for name in os.listdir(tmp) if not name.startswith("torchinductor_"))


def _run_python(code: str, tmp: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=_env(tmp), timeout=timeout)


@pytest.fixture
def short_tmp():
    """A $TMPDIR of a short path: multiprocessing's sockets there must fit AF_UNIX's 108 bytes, which pytest's
    tmp_path under xdist (…/popen-gw1/test_fit_leaves_no_loader_work0/tmp) does not (the workers then hang)."""
    folder = Path(tempfile.mkdtemp(prefix="cvw-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_fit_leaves_no_loader_workers_threads_or_temporary_folders(tmp_path, short_tmp):
    """Before: after fit() the streamed loader's 2 persistent workers and their QueueFeederThreads lived on with the
    Trainer, and at exit a `pymp-*` folder was left in $TMPDIR."""
    data, tmp = write_png_folder(tmp_path / "pngs", per_class=20, size=16), short_tmp
    probe = f"""
        import json, os, threading, time
        from pathlib import Path
        from convolab.training import TrainConfig, Trainer
        threads = {{t.ident for t in threading.enumerate()}}
        trainer = Trainer(TrainConfig(model="lenet5", data={str(data)!r}, epochs=2, batch_size=16, loader="stream",
                                      workers=2, output={str(tmp_path / "run")!r}, progress=False, threads=1))
        trainer.fit()
        deadline = time.monotonic() + 5  # (a closed queue's feeder thread ends on its own, at once)
        while time.monotonic() < deadline and any(t.ident not in threads for t in threading.enumerate()):
            time.sleep(0.05)
        children = [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())
                    and Path(f"/proc/{{p}}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid())]
        left = [name for name in os.listdir({str(tmp)!r}) if name.startswith("pymp-")]
        print(json.dumps({{"children": children, "tmp": left,
                          "threads": [t.name for t in threading.enumerate() if t.ident not in threads]}}))
    """
    proc = _run_python(probe, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after_fit = json.loads(proc.stdout.strip().splitlines()[-1])
    assert after_fit == {"children": [], "tmp": [], "threads": []}, after_fit
    assert _left_in(tmp) == []  # (and after the process ended)


def test_range_test_makes_no_scratch_folder(tmp_path, monkeypatch):
    """Before: a `lr-find-XXXX` scratch run folder existed in $TMPDIR while the test ran (a SIGKILL left it)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    seen: list[list[str]] = []
    train_step = lr_find_module.train_step

    def step_and_look(*args, **kwargs):
        seen.append(_left_in(tmp))
        return train_step(*args, **kwargs)

    monkeypatch.setattr(lr_find_module, "train_step", step_and_look)
    monkeypatch.chdir(tmp_path)
    result = lr_range_test(TrainConfig(model="lenet5", data="digits", progress=False, threads=1), 1e-4, 1e-2, 6)
    assert len(result.lrs) == 6 and seen and all(listing == [] for listing in seen), seen
    assert _left_in(tmp) == [] and not (tmp_path / "runs").exists()


def test_sigterm_stops_lr_find_with_one_line_and_143(tmp_path, short_tmp):
    """Before: SIGTERM ended lr-find silently (rc 143, no line), leaving its `lr-find-XXXX` folder in $TMPDIR."""
    tmp, marker = short_tmp, tmp_path / "stepping"
    driver = f"""
        import sys
        from pathlib import Path
        from convolab.cli import main
        from convolab.training import lr_find
        step = lr_find.train_step
        def marked(*args, **kwargs):
            Path({str(marker)!r}).touch()
            return step(*args, **kwargs)
        lr_find.train_step = marked
        sys.exit(main(["lr-find", "lenet5", "--data", "digits", "--output", {str(tmp_path / "lf")!r},
                       "--steps", "100000", "--end-lr", "1e-3", "--no-progress", "--threads", "1"]))
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(driver)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp), cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert err.strip().splitlines() == ["convolab lr-find: interrupted by SIGTERM"], err[-3000:]
    assert out == "" and _left_in(tmp) == [] and not (tmp_path / "lf").exists()
