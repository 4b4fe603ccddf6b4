"""The CPU thread default of a `convolab` command on a machine other processes share (convolab/_platform.py;
benchmarks/thread_contention.py measures what it is worth)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from convolab import _platform


def test_threads_are_the_current_count_lowered_to_the_cores_left_free(monkeypatch):
    monkeypatch.setattr(_platform, "usable_cores", lambda: 8)
    for busy, current, expected in [(0, 8, 8), (0, 4, 4), (3, 8, 5), (3, 4, 4), (8, 8, 1), (20, 8, 1)]:
        monkeypatch.setattr(_platform, "busy_elsewhere", lambda busy=busy: busy)
        assert _platform.threads_for_a_shared_cpu(current) == expected, (busy, current)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_a_busy_process_is_counted_as_running_elsewhere():
    before = _platform.busy_elsewhere()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert _platform.busy_elsewhere() >= min(before + 2, 2)  # runnable (R) whether or not on a core now
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_a_command_of_its_own_sets_the_threads_but_main_called_from_python_does_not(tmp_path):
    code = ("import torch, sys; from convolab.cli import main; torch.set_num_threads(1); "
            "main(['models', 'lenet5']); print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "1"  # the caller's choice stands
