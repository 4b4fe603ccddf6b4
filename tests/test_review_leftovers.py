"""The previous notes' left-alone items, mended: each test fails against the code before its fix."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import pytest
from conftest import write_png_folder

from convolab._platform import usable_cores
from convolab.cli import _launch, main
from convolab.training.metrics import figure_title

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def test_more_workers_than_cpus_is_said_once_in_a_line_of_its_own(tmp_path, caplog):
    """(before: torch's DataLoader warned three times, a paragraph each, at its making and at each start of its
    workers: `This DataLoader will create 4 worker processes in total. Our suggested max number ...`)"""
    folder = write_png_folder(tmp_path / "photos", per_class=4, size=16)
    workers, cores = usable_cores() + 2, usable_cores()
    caplog.set_level(logging.WARNING, logger="convolab")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "lenet5_modern", "--data", str(folder), "--loader", "stream", "--workers", str(workers),
                     "--epochs", "1", "--batch-size", "4", "--no-progress", "--output", str(tmp_path / "run")]) == 0
    assert not [w for w in caught if "worker processes in total" in str(w.message)], [str(w.message) for w in caught]
    said = [r.getMessage() for r in caplog.records if "--workers" in r.getMessage()]
    assert said == [f"--workers {workers} is more than the {cores} CPU{'s' if cores != 1 else ''} this process may "
                    f"use: the workers share {'them' if cores != 1 else 'it'}, and decode no faster than {cores} "
                    "would"], said


@pytest.mark.parametrize("cores, nproc, threads", [(8, 2, "4"), (3, 2, "1"), (1, 4, "1")])
def test_the_launcher_shares_the_cores_this_process_may_use_among_its_processes(monkeypatch, cores, nproc, threads):
    """`--nproc N` sets each process's OMP_NUM_THREADS to the cores this process may use (its affinity and cgroup
    quota: `usable_cores`), shared by N; not the machine's count (a `taskset -c 0-3` on a 64-core host gave each of
    2 processes 32 threads on 4 cores). The ranks are stand-ins that exit at once."""
    envs = []

    def start(argv, env):
        envs.append(env)
        return subprocess.Popen([sys.executable, "-c", "pass"])

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_launch, "usable_cores", lambda: cores)
    monkeypatch.setattr(_launch, "_start_rank", start)
    assert _launch.launch(nproc, ["train", "lenet5"]) == 0
    assert [env["OMP_NUM_THREADS"] for env in envs] == [threads] * nproc


def test_a_figure_titles_line_break_is_a_line_break_not_a_missing_glyph():
    """(before: compare's seeds picture titled `... (2 epochs)?lines: mean over the seeds`: the line break, no
    printable character, was marked as a glyph no font draws)"""
    assert figure_title("resnet20 on cifar10 (2 epochs)\nlines: mean over the seeds ±", 100) == \
        "resnet20 on cifar10 (2 epochs)\nlines: mean over the seeds ±"
    assert figure_title("a\tb") == "a?b"  # (a tab within a line is still marked)


def test_a_command_whose_home_cannot_be_written_says_nothing_of_matplotlibs_folders(tmp_path):
    """matplotlib warned on stderr at every command where its configuration or cache folder could not be written (a
    read-only home, XDG_CACHE_HOME on a read-only mount), in two lines of its own, and built its font cache again in
    a new temporary folder each time; the command now gives it a folder of the user's own in the temporary folder."""
    env = {"PATH": os.environ["PATH"], "HOME": "/proc/no-home", "XDG_CACHE_HOME": "/proc/no-cache",
           "XDG_CONFIG_HOME": "/proc/no-config", "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "convolab", "train", "lenet5", "--data", "digits", "--epochs", "1",
               "--train-subset", "100", "--test-subset", "50", "--no-progress", "--output", str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and (tmp_path / "run" / "curves.png").is_file(), done.stderr
    assert "matplotlib" not in done.stderr.lower(), done.stderr
    assert (tmp_path / f"convolab-matplotlib-{os.getuid()}").is_dir()


def test_a_users_matplotlibrc_is_still_read_where_only_the_cache_folder_cannot_be_written(tmp_path):
    """MPLCONFIGDIR moves where matplotlib reads its settings too: set beside a readable matplotlibrc, it hid them."""
    (tmp_path / "home" / ".config" / "matplotlib").mkdir(parents=True)
    (tmp_path / "home" / ".config" / "matplotlib" / "matplotlibrc").write_text("axes.facecolor: red\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": "/proc/no-cache",
           "TMPDIR": str(tmp_path)}
    code = ("from convolab._platform import matplotlib_folder_for_a_command as f; f(); import os, matplotlib; "
            "print(os.environ.get('MPLCONFIGDIR'), matplotlib.rcParams['axes.facecolor'])")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["None", "red"], (done.stdout, done.stderr)
