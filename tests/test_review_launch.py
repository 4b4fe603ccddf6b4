"""What `train --nproc` says when stopped early, and what it leaves behind (review of convolab/cli/_launch.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from convolab.cli import _launch

LINUX = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through /proc (Linux)")

# A stand-in for convolab.cli, imported by the rank's entry: a Ctrl-C (SIGINT to itself) lands, and its copy (the
# terminal reaches the ranks, the launcher passes the signal on) comes while the first is being handled.
FAKE_CLI = """
import atexit, os, signal, sys, time

def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)

if os.environ["WHEN"] == "importing":  # the copy lands at interpreter shutdown
    atexit.register(ctrl_c)
    ctrl_c()

def main():
    try:
        ctrl_c()
    except KeyboardInterrupt:  # as main() does: say "interrupted"; the copy lands here
        ctrl_c()
        return 130
    return 0
"""


@pytest.mark.parametrize("when", ["importing", "in main"])
def test_a_copy_of_a_ctrl_c_a_rank_is_handling_prints_no_traceback(tmp_path, when):
    """Before: a traceback (KeyboardInterrupt in main's handler; SystemExit in an atexit callback)."""
    (tmp_path / "convolab" / "cli").mkdir(parents=True)
    (tmp_path / "convolab" / "__init__.py").write_text("")
    (tmp_path / "convolab" / "cli" / "__init__.py").write_text(FAKE_CLI)
    rank = subprocess.run([sys.executable, "-c", _launch.RANK_ENTRY], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=dict(os.environ, WHEN=when, PYTHONPATH=str(tmp_path)))
    assert (rank.returncode, rank.stderr) == (130, "")


def _ranks_that(script: str, monkeypatch, capsys, nproc: int = 2) -> tuple[int, str]:
    """launch(nproc) of ranks that run `script`, from a thread that is not the main one (Ctrl-C reaches the ranks,
    the launcher cannot pass it on): its exit code and stderr."""
    monkeypatch.setattr(_launch, "RANK_ENTRY", script)
    codes = []
    thread = threading.Thread(target=lambda: codes.append(_launch.launch(nproc, [])))
    thread.start()
    thread.join(timeout=60)
    return codes[0], capsys.readouterr().err


@pytest.mark.parametrize("rank_1", ["stopped too", "lost its peer"])
def test_ranks_a_ctrl_c_stopped_before_they_spoke_are_interrupted_not_out_of_contact(rank_1, monkeypatch, capsys):
    """Before: "the 2 processes lost contact with one another ... and none said why" after a Ctrl-C."""
    lost = (f"open(os.environ['CONVOLAB_ERROR_FILE'], 'a').write('{_launch._CONSEQUENCE}RuntimeError: "
            f"Connection closed by peer\\n'); sys.exit({_launch.PEER_LOST})")
    script = ("import os, sys\n"
              f"if os.environ['RANK'] == '1': {lost if rank_1 == 'lost its peer' else 'sys.exit(130)'}\n"
              "sys.exit(130)\n")
    assert _ranks_that(script, monkeypatch, capsys) == (130, "convolab train: interrupted\n")
    # a failure of a rank's own, said, is still that failure
    said = "open(os.environ['CONVOLAB_ERROR_FILE'], 'a').write('convolab train: error: bad\\n'); sys.exit(2)"
    script = f"import os, sys\nif os.environ['RANK'] == '1': {said}\nsys.exit(130)\n"
    assert _ranks_that(script, monkeypatch, capsys) == (130, "convolab train: error: bad\n")


def test_a_ctrl_c_in_a_ranks_first_milliseconds_ends_it_quietly_too(tmp_path, monkeypatch, capfd):
    """Before: Python's own SIGINT until the entry's first lines ran (a traceback from site, or death by SIGINT)."""
    (tmp_path / "convolab" / "cli").mkdir(parents=True)
    (tmp_path / "convolab" / "__init__.py").write_text("")
    (tmp_path / "convolab" / "cli" / "__init__.py").write_text("import time\ndef main():\n    time.sleep(60)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    popen = subprocess.Popen

    def started_then_ctrl_c(*args, **kwargs):
        proc = popen(*args, **kwargs)
        proc.send_signal(signal.SIGINT)  # (while the interpreter starts)
        return proc

    monkeypatch.setattr(subprocess, "Popen", started_then_ctrl_c)
    assert _ranks_that(_launch.RANK_ENTRY, monkeypatch, capfd, nproc=1) == (130, "convolab train: interrupted\n")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@LINUX
def test_a_launcher_killed_outright_leaves_no_folder_in_tmpdir_after_the_next_launch(tmp_path, monkeypatch, capsys):
    """Before: its empty $TMPDIR/convolab-ranks-XXXX stayed for good."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    launcher = subprocess.Popen([sys.executable, "-m", "convolab", "train", "lenet5", "--data", "digits",
                                 "--epochs", "1000", "--no-progress", "--nproc", "2", "--output", str(tmp_path / "r")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while len(ranks := _children(launcher.pid)) < 2 and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.05)
    launcher.kill()
    launcher.wait(timeout=30)
    deadline = time.time() + 60  # (each rank ends itself once it finds its launcher gone)
    while any(map(_running, ranks)) and time.time() < deadline:
        time.sleep(0.1)
    for pid in filter(_running, ranks):
        os.kill(pid, signal.SIGKILL)
    assert len(ranks) == 2
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # (gettempdir() caches the folder)
    assert _ranks_that("import sys; sys.exit(0)", monkeypatch, capsys) == (0, "")
    assert [p.name for p in tmp.iterdir() if "convolab" in p.name] == []


@LINUX
@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_the_ranks_start_prints_no_traceback(tmp_path):
    """Before: 3 of 11 tries printed the ranks' tracebacks before `convolab train: interrupted`."""
    for delay in (0.5, 2.0, 3.5, 5.0, 6.5):
        run = tmp_path / f"run-{delay}"
        launcher = subprocess.Popen([sys.executable, "-m", "convolab", "train", "lenet5", "--data", "digits",
                                     "--epochs", "3", "--no-progress", "--nproc", "2", "--output", str(run)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        deadline = time.time() + 120
        while len(_children(launcher.pid)) < 2 and time.time() < deadline and launcher.poll() is None:
            time.sleep(0.02)
        time.sleep(delay)
        os.killpg(launcher.pid, signal.SIGINT)  # as Ctrl-C sends it: to the launcher and its ranks
        _, err = launcher.communicate(timeout=120)
        assert launcher.returncode == 130 and "Traceback" not in err and "Exception ignored" not in err, err
        assert err.splitlines()[-1] == "convolab train: interrupted" or "stopped by SIGINT" in err, err
