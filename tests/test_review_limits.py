"""Under resource limits (the limits review): decoding workers that a limit refuses are one line and exit 2, not a
traceback followed by a hang at exit; a script that keeps a streamed `train_loader` to its end exits."""
from __future__ import annotations

import errno
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import write_png_folder

from convolab.data import workers
from convolab.data.stream import default_workers
from convolab.errors import DataError

TIMEOUT = 120  # seconds: each command here ends in a few; the faults fixed here never ended


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_png_folder(tmp_path_factory.mktemp("limits") / "photos", per_class=12, size=40,
                            classes=("cat", "dog"))


def _run(args: list[str], cwd: Path, files_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if files_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files_limit, files_limit))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CONVOLAB_CACHE": str(cwd / "cache")}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=limit)


def test_the_readmes_streaming_example_exits_when_its_work_is_done(photos, tmp_path):
    # The README's lines: a train_loader's workers persist and ignore SIGTERM, so multiprocessing's exit handler,
    # which SIGTERMs them and waits, waited forever (`timeout` killed it) before they were shut down at exit.
    script = tmp_path / "stream.py"
    script.write_text(textwrap.dedent(f"""
        from convolab.data import load_data
        if __name__ == "__main__":
            photos = load_data({str(photos)!r}, loader="stream", workers=2)
            photos = photos.decoded_as(224, random_crop=True, flip=True)
            loader, sampler = photos.train_loader(batch_size=8, seed=0)
            sampler.set_epoch(0)
            for images, labels, index in photos.batches(loader, photos.train):
                pass
            print("done", flush=True)
    """))
    start = time.monotonic()
    done = _run([sys.executable, str(script)], tmp_path)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert time.monotonic() - start < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the open-file count is Linux's here")
def test_workers_refused_by_the_open_file_limit_are_one_line_and_the_command_exits(photos, tmp_path):
    done = _run([sys.executable, "-m", "convolab", "train", "lenet5", "--data", str(photos), "--loader", "stream",
                 "--workers", "8", "--epochs", "1", "--batch-size", "8", "--no-progress", "--output",
                 str(tmp_path / "run")], tmp_path, files_limit=64)
    lines = [line for line in done.stderr.splitlines() if "UserWarning" not in line and not line.startswith(" ")]
    assert done.returncode == 2, done.stderr
    assert lines[-1] == ("convolab train: error: the 8 --workers that decode the images could not start: too many "
                         "open files (the limit of `ulimit -n`); give fewer --workers, or --workers 0 (decoded in "
                         "this process), or raise the limit"), done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def _ignores_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)


def _sleeper() -> multiprocessing.Process:
    child = multiprocessing.get_context("fork").Process(target=_ignores_sigterm, daemon=True)
    child.start()
    return child


def test_a_limit_refusing_a_worker_is_a_data_error_and_kills_those_started():
    started = []
    with pytest.raises(DataError, match=r"^the 3 workers could not start: too many open files \(the limit of "
                                        r"`ulimit -n`\); give fewer$"):
        with workers.watched("the 3 workers", "give fewer"):
            started.append(_sleeper())
            raise OSError(errno.EMFILE, "Too many open files")
    assert not started[0].is_alive()  # (killed: SIGTERM would not have ended it)


def test_an_error_that_is_not_a_limit_passes_through_and_its_workers_are_ended_at_exit():
    started = []
    with pytest.raises(ValueError, match="a bug"):
        with workers.watched("the 3 workers", "give fewer"):
            started.append(_sleeper())
            raise ValueError("a bug")
    with pytest.raises(RuntimeError, match="other"):
        with workers.watched("the 3 workers", "give fewer"):
            raise RuntimeError("other")
    assert started[0].is_alive()
    workers._at_exit(close=lambda loader: None)  # (what runs at exit, before multiprocessing's own handler)
    assert not started[0].is_alive()


@pytest.mark.parametrize("err", [RuntimeError("can't start new thread"), OSError(errno.EAGAIN, "try again")])
def test_workers_that_cannot_be_sent_their_end_are_killed(err):
    class Iterator:  # torch's, whose shutdown puts to the workers' queues: a feeder thread a pids limit refuses
        def __init__(self, child):
            self._workers = [child]

        def _shutdown_workers(self):
            raise err

    class Loader:
        pass

    loader = Loader()
    loader._iterator = Iterator(_sleeper())
    child = loader._iterator._workers[0]
    workers.close_workers(loader)
    assert loader._iterator is None and not child.is_alive()


def test_the_limit_of_processes_and_threads_is_named():
    assert "`ulimit -u`" in workers.limit_refused(RuntimeError("can't start new thread"))
    assert "`ulimit -u`" in workers.limit_refused(OSError(errno.EAGAIN, "Resource temporarily unavailable"))
    assert workers.limit_refused(OSError(errno.ENOENT, "No such file")) == ""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_the_default_workers_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == 1  # (was min(8, cpu_count): 8 workers on a 1-CPU allocation of a big node)


@pytest.mark.skipif(not hasattr(signal, "SIGXCPU"), reason="no CPU-time limit signal on this platform")
def test_a_cpu_time_limit_stops_the_run_as_sigterm_does_and_it_resumes(tmp_path):
    # `ulimit -t`, Grid Engine's s_cpu, PBS: SIGXCPU at the soft limit, every second after it, SIGKILL at the hard
    # one. It ended the run with no line (its default action) before it was taken as a stop.
    def cpu_limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (12, 120))  # (import and data: ~4 s of CPU)

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "resnet20", "--data", "digits", "--epochs", "200",
                           "--threads", "1", "--no-progress", "--output", str(run)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=cpu_limit)
    assert done.returncode == 128 + signal.SIGXCPU, done.stderr
    assert "stopped by SIGXCPU in epoch" in done.stderr and f"continue with: convolab train --resume {run}" in \
        done.stderr, done.stderr
    assert (run / "last.pt").is_file() and (run / "config.json").is_file()


@pytest.mark.parametrize("layout, files, left", [
    ("0::/job\n", {"job/memory.max": "1000000\n", "job/memory.current": "400000\n"}, [600000]),  # cgroup v2
    ("0::/job\n", {"job/memory.max": "max\n", "job/memory.current": "400000\n"}, []),  # v2 without a limit
    ("4:memory:/slurm/job\n2:pids:/x\n", {"memory/slurm/job/memory.limit_in_bytes": "1000000",
                                          "memory/slurm/job/memory.usage_in_bytes": "1200000"}, [0]),  # v1, over it
    ("4:memory:/\n", {"memory/memory.limit_in_bytes": "9223372036854771712",
                      "memory/memory.usage_in_bytes": "1200000"}, []),  # v1 without a limit
])
def test_the_memory_left_under_this_processs_cgroup_is_read(tmp_path, monkeypatch, layout, files, left):
    from convolab.training import forecast

    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text(layout)
    for name, text in files.items():
        (tmp_path / "cg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / name).write_text(text)
    monkeypatch.setattr(forecast, "resource", None)  # (the address-space limit: none here)
    assert forecast.limits_left(str(tmp_path / "proc"), str(tmp_path / "cg")) == left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmSize is read from /proc")
def test_a_run_beyond_the_address_space_limit_is_refused_in_one_line(tmp_path):
    # `ulimit -v`: the memory check read MemAvailable alone, and the run failed to allocate with a traceback
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "resnet20", "--data", "digits", "--image-size",
                           "64", "--batch-size", "1400", "--epochs", "1", "--no-progress", "--output",
                           str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, preexec_fn=limit)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("convolab train: error: resnet20 at 64 px, batch 1400, "
                                                           "would need about"), done.stderr


@pytest.mark.parametrize("layout, files, cpus", [
    ("0::/job\n", {"job/cpu.max": "150000 100000\n"}, 2),  # cgroup v2, 1.5 CPUs: rounded up
    ("0::/job\n", {"job/cpu.max": "max 100000\n"}, None),  # v2 without a quota
    ("5:cpu,cpuacct:/docker/c1\n", {"cpu,cpuacct/docker/c1/cpu.cfs_quota_us": "100000",
                                     "cpu,cpuacct/docker/c1/cpu.cfs_period_us": "100000"}, 1),  # v1, docker --cpus 1
    ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1 without a quota
])
def test_the_cpus_of_this_processs_cgroup_quota_are_read(tmp_path, layout, files, cpus):
    from convolab._platform import cpu_quota

    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text(layout)
    for name, text in files.items():
        (tmp_path / "cg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / name).write_text(text)
    assert cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg")) == cpus


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_the_usable_cores_are_no_more_than_the_quota(monkeypatch):
    from convolab import _platform

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))  # (a big host's every core)
    monkeypatch.setattr(_platform, "cpu_quota", lambda: 2)  # (docker run --cpus 2)
    assert _platform.usable_cores() == 2
    monkeypatch.setattr(_platform, "cpu_quota", lambda: None)
    assert _platform.usable_cores() == 64
