"""Data-parallel training: 2 CPU processes (gloo, through `convolab train --nproc 2`) reach the
same weights as 1 process with the same global batch and data order."""
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

import convolab.cli.train as cli_train
from convolab.cli import main
from convolab.cli._launch import READER_LEFT, _explain_failure, strip_option
from convolab.errors import ConfigError, FieldError
from convolab.training import TrainConfig, Trainer, load_checkpoint
from convolab.training.distributed import Distributed
from convolab.training.engine import TrainingInterrupted
from convolab.training.run_data import check_batch_size

# BN-free and dropout-free (DDP keeps BN statistics per process); SGD, whose update is linear in
# the gradient, so the two ways of averaging it differ by float round-off only.
RUN = ["lenet5_modern", "--data", "digits", "--epochs", "1", "--batch-size", "64", "--optimizer", "sgd",
       "--augment", "none", "--no-progress"]


def test_two_processes_reach_the_weights_of_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=64, optimizer="sgd",
                         augment="none", progress=False, output=str(one))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes (2 shared cores)
    try:
        Trainer(config).fit()
    finally:
        torch.set_num_threads(threads)
    cmd = [sys.executable, "-m", "convolab", "train", *RUN, "--output", str(two), "--nproc", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x 2 processes" in proc.stdout and proc.stdout.count("test accuracy:") == 1  # rank 0 prints
    a, b = load_checkpoint(one / "last.pt"), load_checkpoint(two / "last.pt")
    assert a["step"] == b["step"] == 1437 // 64
    for name, tensor in a["model"].items():
        assert (tensor - b["model"][name]).abs().max().item() <= 1e-5, name
    # Metrics are reduced over both processes: the same loss and accuracies as one process.
    ha, hb = json.loads(a["history"])[0], json.loads(b["history"])[0]
    assert hb["train_loss"] == pytest.approx(ha["train_loss"], abs=1e-5)
    assert (hb["train_acc"], hb["test_acc"]) == (ha["train_acc"], ha["test_acc"])
    assert json.loads((two / "config.json").read_text())["resolved"]["processes"] == 2
    assert len(b["rng_ranks"]) == 2  # each rank's random streams, for --resume
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_a_one_process_run_stopped_between_folds_resumes_under_nproc_counting_its_sums_once(tmp_path):
    config = dict(model="lenet5_modern", data="digits", epochs=1, batch_size=64, optimizer="sgd", augment="none",
                  progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = Trainer(TrainConfig(**config, output=str(tmp_path / "whole"))).fit().history[0]
        cut = Trainer(TrainConfig(**config, output=str(tmp_path / "cut")))
        signal_after_step(cut, 15)  # 6 batches past the fold after 10: their sums are kept in last.pt
        with pytest.raises(TrainingInterrupted):
            cut.fit()
    finally:
        torch.set_num_threads(threads)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["pending"]["seen"] == 6 * 64
    proc = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(tmp_path / "cut"), "--nproc",
                           "2", "--no-progress"], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads(load_checkpoint(tmp_path / "cut" / "last.pt")["history"])[0]
    assert resumed["train_acc"] == whole["train_acc"]  # (before: the 384 images counted once per rank)
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-5)


@pytest.mark.slow  # (44 s; a Ctrl-C to streaming ranks and one-process resumes run by default: test_stream)
def test_ctrl_c_stops_every_process_and_the_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    base = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", "digits", "--epochs", "3",
            "--batch-size", "16", "--no-progress", "--nproc", "2"]
    whole = subprocess.run(base + ["--output", str(tmp_path / "whole")], capture_output=True, text=True,
                           timeout=300, env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    # SIGINT to the launcher and both ranks at once, as Ctrl-C in a terminal sends it.
    returncode, err = signal_after_first_epoch(base, tmp_path / "cut", signal.SIGINT, env=env, process_group=True)
    text = err.decode()
    assert returncode == 130 and "Traceback" not in text, text  # interrupted, not a mistake of the user's (2)
    assert text.count("convolab train: stopped by SIGINT") == 1 and "error" not in text, text  # rank 0 only
    assert f"continue with: convolab train --resume {tmp_path / 'cut'} --nproc 2" in text  # as it was run
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] < 3
    resumed = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(tmp_path / "cut"),
                              "--no-progress", "--nproc", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def metric_columns(run):
        return [r.split(",")[:7] for r in (tmp_path / run / "metrics.csv").read_text().splitlines()]

    assert len(metric_columns("cut")) == 4 and metric_columns("cut") == metric_columns("whole")


def _photos_with_bad_files(root):
    """32 training photos of 200 px, 5 of them unreadable: a streaming worker of either rank meets one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(16):
                pixels = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    for i in range(3, 8):
        (root / "train" / "b" / f"{i}.png").write_bytes(b"not a png")
    return root


@pytest.mark.parametrize("case", ["no-image", "no-cuda", pytest.param("bad-file-mid-epoch", marks=pytest.mark.slow),
                                  pytest.param("image-size-too-small", marks=pytest.mark.slow)])  # (as no-cuda:
# every rank fails alike, before training; bad-file-mid-epoch, 13 s: a rank failing mid-run is the rank killed below)
def test_bad_input_under_nproc_is_one_line_and_exit_code_2(tmp_path, case):
    """Rank 0 fails alone (rank 1 waits for its data), every rank fails alike, or either rank's worker
    meets a bad file mid-epoch: one line in every case, never a traceback from the rank left behind."""
    if case == "no-cuda" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    if case == "no-image":
        for name in ("cat", "dog"):  # (one class, or too few for a test split, is refused before any is read)
            (tmp_path / "photos" / name).mkdir(parents=True)
            for i in range(10):
                (tmp_path / "photos" / name / f"{i}.png").write_bytes(b"not a png")
        extra, expected = [], f"convolab train: error: no readable image in {tmp_path / 'photos'}"
    elif case == "no-cuda":
        (tmp_path / "photos").mkdir()
        extra, expected = ["--data", "digits", "--device", "cuda"], "convolab train: error: --device cuda was asked"
    elif case == "image-size-too-small":  # every rank refuses it in build_run
        (tmp_path / "photos").mkdir()
        extra = ["--data", "digits", "--image-size", "16"]
        expected = "convolab train: error: --image-size 16 is too small for lenet5_modern"
    else:
        _photos_with_bad_files(tmp_path / "photos")
        extra = ["--loader", "stream", "--workers", "0", "--batch-size", "8"]
        expected = f"convolab train: error: image {tmp_path / 'photos' / 'train' / 'b'}"
    cmd = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", str(tmp_path / "photos"), *extra,
           "--no-progress", "--nproc", "2", "--output", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(expected), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc (Linux)")
def _start_until_first_epoch(tmp_path: Path, epochs: int = 30) -> tuple[subprocess.Popen, dict[int, int]]:
    """`train --nproc 2` for `epochs` epochs, started and waited on until its first epoch is written; the
    launcher, and its ranks' process ids by rank."""
    cmd = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", "digits", "--epochs", str(epochs),
           "--batch-size", "16", "--no-progress", "--nproc", "2", "--output", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while not (tmp_path / "run" / "metrics.csv").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    ranks = {}
    for entry in Path("/proc").iterdir():  # the launcher's children, by the RANK their environment holds
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid:
                environ = (entry / "environ").read_bytes().split(b"\0")
                ranks[int(next(v for v in environ if v.startswith(b"RANK="))[5:])] = int(entry.name)
        except (OSError, IndexError, ValueError, StopIteration):  # a process that ended meanwhile
            pass
    assert sorted(ranks) == [0, 1], ranks
    return proc, ranks


def test_a_rank_killed_mid_run_is_named_and_the_other_stops(tmp_path):
    """SIGKILL (what the kernel's out-of-memory killer sends) to rank 1 after epoch 1: rank 0 stops
    quietly at its next collective and the launcher says which process died of what."""
    proc, ranks = _start_until_first_epoch(tmp_path)
    os.kill(ranks[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert proc.returncode == 128 + signal.SIGKILL, err[-2000:]
    assert errors == ["convolab train: error: process 1 of 2 died of SIGKILL (killed, by hand or by the system's "
                      "out-of-memory killer); the others were stopped; the run's last.pt, where one was written, "
                      "continues it: convolab train --resume RUN_DIR --nproc 2"], err[-2000:]
    assert "Traceback" not in err


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.slow  # (12 s; a launcher killed outright, its ranks' folder gone: test_review_launch, by default)
def test_ranks_die_with_a_launcher_killed_outright(tmp_path):
    """SIGKILL to the launcher (a CI job's timeout) leaves no rank behind, orphaned in a collective."""
    proc, ranks = _start_until_first_epoch(tmp_path, epochs=1000)  # (hours of training)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while any(map(_alive, ranks.values())) and time.time() < deadline:
        time.sleep(0.05)
    left = [pid for pid in ranks.values() if _alive(pid)]
    for pid in left:  # (so that a failure leaves nothing running)
        os.kill(pid, signal.SIGKILL)
    assert not left, f"ranks {left} outlived their launcher"


def test_nproc_refuses_a_batch_that_does_not_split_evenly(tmp_path, capsys):
    assert main(["train", *RUN, "--batch-size", "50", "--nproc", "3", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 50 is not divisible by the 3 processes" in err and "--batch-size 48" in err
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_nproc_hints_name_what_can_change_a_resumed_runs_batch_cannot_nor_images_fewer_than_processes(
        tmp_path, capsys):
    assert main(["train", *RUN, "--batch-size", "63", "--no-progress", "--output", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--nproc", "2"]) == 2
    assert capsys.readouterr().err == (
        "convolab train: error: --batch-size 63 of the resumed run is not divisible by the 2 processes that share "
        "each batch evenly, and cannot change; run it on 3 or 7 or 9 or 21 or 63 processes, or one\n")
    with pytest.raises(ConfigError, match=r"^the 2 training images cannot be shared by 3 processes .*; run 2 "
                                          r"processes or fewer, or give more images$"):
        check_batch_size(3, 2, 3)
    with pytest.raises(FieldError, match=r"7 is larger than the 5 training images; give at most 4$"):
        check_batch_size(7, 5, 2)


def test_a_reader_that_left_is_no_failure_of_the_processes(capsys):
    # `convolab train ... --nproc 2 | head -1`: rank 0 stops quietly (141, as one process does), rank 1 loses it
    _explain_failure(2, [READER_LEFT, 3], set(), [[], ["#lost-peer Connection closed by peer"]])
    assert capsys.readouterr().err == ""
    _explain_failure(2, [1, 3], set(), [[], ["#lost-peer Connection closed by peer"]])
    assert "lost contact with one another" in capsys.readouterr().err


def test_ranks_split_each_global_batch_in_order():
    idx = torch.arange(10, 18)
    shards = [Distributed(rank=r, world_size=2).shard(idx) for r in range(2)]
    assert shards[0].tolist() == [10, 12, 14, 16] and shards[1].tolist() == [11, 13, 15, 17]
    assert Distributed().shard(idx) is idx


def test_relaunch_drops_nproc_and_its_abbreviations():
    argv = ["train", "lenet", "--nproc", "2", "--epochs", "1", "--npr=2", "--no-progress", "--nproc=4"]
    assert strip_option(argv, "--nproc", min_prefix=4) == ["train", "lenet", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("cores, warned", [(2, True), (4, False)])
def test_more_processes_than_cores_is_said_before_they_start(monkeypatch, caplog, tmp_path, cores, warned):
    started = []
    monkeypatch.setattr(cli_train, "usable_cores", lambda: cores)
    monkeypatch.setattr(cli_train, "launch", lambda nproc, argv: started.append((nproc, argv)) or 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", *RUN, "--nproc", "4", "--output", str(tmp_path / "r")]) == 0
    assert started and started[0][0] == 4
    said = ("--nproc 4 is more than the 2 CPUs this process may use: the 4 processes take turns on them, one thread "
            "each, and train no faster than --nproc 2 would")
    assert (said in caplog.text) is warned


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), ("cuda", "nccl")])
def test_the_process_group_waits_30_minutes_for_a_rank_on_either_backend(monkeypatch, device, backend):
    """NCCL's own timeout is 10 minutes, gloo's 30: ranks waiting in a barrier while rank 0 alone unpacks a large
    tar would be aborted on GPUs only."""
    import datetime

    import torch.distributed as dist
    joined = []
    monkeypatch.setenv("RANK", "1"), monkeypatch.setenv("WORLD_SIZE", "2"), monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda name, **kw: joined.append((name, kw)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    assert Distributed.from_env(torch.device(device)).rank == 1
    assert joined == [(backend, {"timeout": datetime.timedelta(minutes=30)})]
