"""A write that fails part-way (a full disk, a file-size limit, a folder turned read-only, a link or a device where
a file is written): one line, nothing already written lost, and the line says how to go on (the disk-full review)."""
from __future__ import annotations

import errno
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import write_png_folder

import convolab._atomic as atomic
from convolab._atomic import atomic_write
from convolab.cli import main
from convolab.data import load_data
from convolab.errors import NotWritableError

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
TRAIN = ["train", "lenet5_modern", "--data", "digits", "--no-progress"]


def _refuse(monkeypatch, name: str, err: int = errno.EACCES, after: int = 0) -> None:
    """os.replace onto a file called `name` fails with `err` (after `after` writes of it went through), as a folder
    turned read-only, or a disk that filled up, between the command's checks and its write."""
    real, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            seen[0] += 1
            if seen[0] > after:
                raise OSError(err, os.strerror(err), str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", replace)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ----- links and devices where a file is written -------------------------------------------------------------
def test_a_write_onto_a_link_writes_the_file_it_leads_to_and_keeps_the_link(tmp_path):
    """Before: the rename replaced the link with a plain file, and the file it led to kept its old content."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "arch.svg").write_text("old")
    (tmp_path / "latest.svg").symlink_to("v1/arch.svg")
    atomic_write(tmp_path / "latest.svg", lambda tmp: Path(tmp).write_text("new"))
    assert (tmp_path / "latest.svg").is_symlink() and (tmp_path / "v1" / "arch.svg").read_text() == "new"
    (tmp_path / "dangling.svg").symlink_to("gone/arch.svg")  # (the diff review's: named the link, not its target)
    with pytest.raises(NotWritableError, match=f"dangling.svg is a link to {tmp_path / 'gone' / 'arch.svg'}, whose "
                                               "folder does not exist"):
        atomic_write(tmp_path / "dangling.svg", lambda tmp: Path(tmp).write_text("new"))


def test_draw_onto_a_fifo_is_one_line_and_leaves_it(tmp_path, capsys):
    """Before: `draw --out` replaced a device or FIFO by a plain file, exit 0 (as root: /dev/null)."""
    pipe = tmp_path / "pipe.svg"
    os.mkfifo(pipe)
    assert main(["draw", "lenet5", "--out", str(pipe)]) == 2
    assert "exists and is not a regular file" in _one_line(capsys)
    assert not pipe.is_file() and pipe.exists()
    with pytest.raises(NotWritableError):
        atomic_write(pipe, lambda tmp: Path(tmp).write_text("x"))


# ----- a file-size limit (ulimit -f) --------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="no RLIMIT_FSIZE")
def test_a_file_size_limit_is_one_line_not_a_traceback(tmp_path):
    """Before: torch.save's `RuntimeError: [enforce fail at inline_container.cc] unexpected pos`, exit 1."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (400 * 1024, 400 * 1024))"
    done = subprocess.run([sys.executable, "-c", f"{limit}\nimport sys\nfrom convolab.cli import main\n"
                           f"sys.exit(main({[*TRAIN, '--epochs', '1', '--output', str(tmp_path / 'run')]!r}))"],
                          capture_output=True, text=True, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot be written in full (File too large" in lines[-1] and "raise the limit" in lines[-1], lines[-1]


# ----- a write refused after the command's checks ---------------------------------------------------------------
def test_report_whose_results_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    """Before: `convolab._atomic.RefusedWrite: [Errno 1] Operation not permitted` and its traceback (report, compare,
    lr-find)."""
    assert main([*TRAIN, "--epochs", "1", "--output", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    _refuse(monkeypatch, "results.json")
    assert main(["report", str(tmp_path / "run"), "--output", str(tmp_path / "rep")]) == 2
    assert "cannot be written (permission denied) while writing results.json" in _one_line(capsys)
    _refuse(monkeypatch, "lr_find.csv")
    assert main(["lr-find", "lenet5_modern", "--data", "digits", "--steps", "5", "--no-progress",
                 "--output", str(tmp_path / "lr")]) == 2
    assert "while writing lr_find.csv" in _one_line(capsys)


def test_a_run_whose_last_curves_cannot_be_drawn_is_complete(tmp_path, capsys, caplog, monkeypatch):
    """Before: `error: ... while writing curves.png; the run stopped ...: continue with convolab train --resume`,
    exit 2, though every epoch was saved, and the resume then said the run was complete."""
    _refuse(monkeypatch, "curves.png", after=1)  # (the first epoch's drawing; the last one's is refused)
    caplog.set_level(logging.INFO)
    assert main([*TRAIN, "--epochs", "3", "--output", str(tmp_path / "run")]) == 0
    assert "test accuracy: " in capsys.readouterr().out
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said and said[0].startswith("the last curves could not be drawn: ") and "the run is complete" in said[0]


def test_a_full_disk_mid_run_says_what_is_intact_and_how_to_resume(tmp_path, capsys, monkeypatch):
    """Before: the disk-full line alone (`free some space, or write elsewhere`), where a folder turned read-only
    also said what was intact and gave the resume command."""
    run = tmp_path / "run"
    _refuse(monkeypatch, "last.pt", errno.ENOSPC, after=1)
    assert main([*TRAIN, "--epochs", "3", "--output", str(run)]) == 2
    line = _one_line(capsys)
    assert "no space left on the disk of" in line and "while writing last.pt" in line, line
    assert line.endswith(f"the run stopped (its last.pt of epoch 1 is intact): free some space and continue with "
                         f"convolab train --resume {run}"), line
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0


def test_a_run_that_could_not_write_its_config_is_told_to_start_again_not_to_resume(tmp_path, capsys, monkeypatch):
    """Before: `continue with convolab train --resume RUN`, which then said RUN is not a run folder."""
    _refuse(monkeypatch, "config.json")
    assert main([*TRAIN, "--epochs", "1", "--output", str(tmp_path / "run")]) == 2
    line = _one_line(capsys)
    assert line.endswith("the run stopped (nothing was saved): make " f"{tmp_path / 'run'} writable and run the same "
                         "command again"), line


def test_a_compared_model_stopped_by_a_write_points_at_the_comparisons_resume(tmp_path, capsys, monkeypatch):
    """Before: the failed run's status said `continue with convolab train --resume OUTPUT/runs/MODEL`."""
    out = tmp_path / "cmp"
    _refuse(monkeypatch, "best.pt", errno.ENOSPC)
    code = main(["compare", "lenet5", "lenet5_modern", "--data", "digits", "--epochs", "1", "--train-subset", "200",
                 "--no-progress", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert f"2 of 2 models did not finish: lenet5, lenet5_modern; once mended, continue with: convolab compare " \
           f"--resume {out}" in printed, printed
    status = (out / "results.md").read_text()
    assert "while writing best.pt: free some space, then resume the comparison |" in status, status
    assert "train --resume" not in status and "compare --resume" not in status, status  # (said once, above)


def test_a_comparison_failed_by_its_own_options_is_not_told_to_resume(tmp_path, capsys):
    """The diff review's: a NaN loss at --lr 1e30 was told `compare --resume`, which fails alike and takes no --lr."""
    code = main(["compare", "lenet5", "--data", "digits", "--epochs", "1", "--train-subset", "200", "--lr", "1e30",
                 "--no-progress", "--output", str(tmp_path / "cmp")])
    printed = capsys.readouterr().out
    assert code == 1 and "1 of 1 models did not finish: lenet5\n" in printed and "--resume" not in printed, printed


# ----- the decompressed copy of a compressed archive -------------------------------------------------------------
def test_a_decompressed_copy_cut_short_is_made_again_not_read_as_the_users_archive_damaged(tmp_path, caplog,
                                                                                             monkeypatch):
    """Before: any file of the name was taken as whole: a copy cut short (a crash before the system wrote it all)
    blamed the user's archive (`image ... cannot be decoded`) and, with --skip-bad-images, trained on a part."""
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "cache"))
    folder = write_png_folder(tmp_path / "imgs", per_class=8)
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="imgs")
    first = load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    copy = first.train.reader.tar_path
    whole = copy.stat().st_size
    os.truncate(copy, whole // 2)
    caplog.set_level(logging.INFO)
    again = load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    assert f"the decompressed copy {copy} is damaged" in caplog.text
    assert copy.stat().st_size == whole and len(again.train) + len(again.test) == 48
    assert sum(len(b) for b, _, _ in again.eval_batches(again.test, 64)) == len(again.test)
    # A copy without its record (an older convolab's, or a cache with no room left for it) is read if it ends as a tar
    # ends (the diff review's: a whole copy was called damaged, and failed to be made again on a full disk)
    copy.with_suffix(".size").unlink()
    caplog.clear()
    load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    assert "decompress" not in caplog.text, caplog.text
    os.truncate(copy, whole // 2)  # (its last blocks now an image's bytes)
    load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    assert f"the decompressed copy {copy} is damaged" in caplog.text and copy.stat().st_size == whole


def test_an_image_cache_named_by_a_file_says_so(tmp_path, caplog, monkeypatch):
    """Before: `cannot write the image cache in CACHE (File exists)`, for CONVOLAB_CACHE naming a file."""
    (tmp_path / "afile").write_text("hi")
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "afile"))
    caplog.set_level(logging.INFO)
    data = load_data(str(write_png_folder(tmp_path / "imgs")))
    assert len(data.train) + len(data.test) == 36
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [f"cannot write the image cache in {tmp_path / 'afile'} (a file is in the way of the folder: File "
                    "exists); going on without it, so the images are decoded again next time: set CONVOLAB_CACHE to "
                    "a writable folder to keep them"], said


# ----- a full disk or a read-only file system, really mounted (root only) ----------------------------------------
@pytest.fixture
def mounted(tmp_path):
    """mount(*options) -> a tmpfs mounted with them, unmounted afterwards; skipped where mounting is not allowed."""
    points = []

    def mount(*options: str, read_only_view_of: Path | None = None) -> Path:
        """A tmpfs; or, `read_only_view_of` a folder, that folder bound here read-only."""
        point = tmp_path / f"m{len(points)}"
        point.mkdir()
        commands = [["mount", "--bind", str(read_only_view_of), str(point)],
                    ["mount", "-o", "remount,bind,ro", str(point)]] if read_only_view_of else \
            [["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(point)]]
        for i, command in enumerate(commands):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                pytest.skip(f"cannot mount here ({done.stderr.strip() or 'mount failed'}): needs root")
            if i == 0:
                points.append(point)  # (unmounted at the end, a second command's failure too)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", str(point)], check=False)


def test_a_disk_with_no_byte_free_is_refused_before_the_data_load(mounted, capsys, caplog):
    """Before: an empty scratch file, which a full disk still makes, passed the check: CIFAR-10 was decoded (20 s
    here, hours on ImageNet) before `no space left ... while writing config.json`."""
    disk = mounted("size=64k")
    with open(disk / "filler", "wb", buffering=0) as f:
        with pytest.raises(OSError):
            while True:
                f.write(bytes(4096))
    caplog.set_level(logging.INFO)
    assert main([*TRAIN, "--epochs", "1", "--output", str(disk / "run")]) == 2
    assert f"--output {disk / 'run'}: no space left on its disk" in _one_line(capsys)
    assert not [r for r in caplog.records if r.getMessage().startswith("training ")]  # (no data loaded)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_read_only_file_system_is_named_so_not_permission_denied(mounted, tmp_path, capsys):
    """Before: `evaluate RUN` in a read-only run folder: `is not writable (permission denied in RUN)`, which no chmod
    mends."""
    assert main([*TRAIN, "--epochs", "1", "--output", str(tmp_path / "src" / "run")]) == 0
    view = mounted(read_only_view_of=tmp_path / "src")
    capsys.readouterr()
    assert main(["evaluate", str(view / "run")]) == 2
    assert f"is not writable (a read-only file system in {view / 'run'})" in _one_line(capsys)


def test_a_resumed_run_on_a_full_disk_is_told_what_is_intact_not_to_choose_another_folder(mounted, capsys):
    """The diff review's: the check before the data load refused a --resume as `--output RUN: no space left ...;
    choose another folder`, which a resumed run cannot; and a run that saved nothing lost its config.json."""
    disk = mounted("size=8m")
    run = disk / "run"
    assert main([*TRAIN, "--epochs", "1", "--output", str(run)]) == 0
    with open(disk / "filler", "wb", buffering=0) as f:
        with pytest.raises(OSError):
            while True:
                f.write(bytes(4096))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    line = _one_line(capsys)
    assert "the run stopped (its last.pt of epoch 1 is intact): free some space and continue with convolab train " \
           f"--resume {run}" in line and "choose another" not in line, line
    (disk / "filler").unlink()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0, capsys.readouterr().err


@pytest.mark.skipif(shutil.which("unshare") is None or not os.path.isdir("/dev/shm"), reason="needs unshare, /dev/shm")
def test_workers_out_of_shared_memory_are_one_line(tmp_path):
    """Before: torch's traceback of a worker, `RuntimeError: unable to allocate shared memory(shm) for file
    </torch_...>: No space left on device`, in a container whose /dev/shm is small (Docker's is 64 MiB)."""
    folder = write_png_folder(tmp_path / "imgs", per_class=24, size=32)
    train = (f"import sys\nfrom convolab.cli import main\nsys.exit(main(['train', 'lenet5_modern', '--data', "
             f"{str(folder)!r}, '--loader', 'stream', '--workers', '2', '--batch-size', '16', '--epochs', '1', "
             f"'--no-progress', '--output', {str(tmp_path / 'run')!r}]))")
    script = f"mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 99\nexec {sys.executable} -c {shlex.quote(train)}"
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    if done.returncode == 99 or "unshare failed" in done.stderr or "Operation not permitted" in done.stderr:
        pytest.skip(f"cannot mount a small /dev/shm of its own here: {done.stderr.strip()[:200]}")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith("convolab train: error: the 2 --workers that decode the images ran out of shared "
                                "memory") and "give --workers 0" in lines[-1], lines[-1]
