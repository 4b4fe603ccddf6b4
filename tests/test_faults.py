"""Faults met during a run rather than on its command line: bad files inside a training folder (the run's
log lines come before the error, so they are not rows of tests/test_bad_inputs.py's table) and a disk that
fills up while a checkpoint is written."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import write_png_folder
from PIL import Image

from convolab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
HUGE = "400 M pixels, over PIL's limit of 179 M that guards against decompression bombs: resize it"


def _grey_folder(root: Path) -> Path:
    return write_png_folder(root, per_class=6, size=28, classes=("a", "b"), mode="L", split_dirs=False)


# ----- bad files inside a training folder: the run's log lines come first, so not rows of the table --------
@pytest.fixture(scope="module")
def folder_with_huge_image(tmp_path_factory) -> Path:
    """Two classes of 28 px grey PNGs, and in one of them a 20000 x 20000 PNG (over PIL's limit)."""

    root = write_png_folder(tmp_path_factory.mktemp("huge") / "data", per_class=6, size=28, classes=("a", "b"),
                            mode="L", split_dirs=False)
    Image.new("1", (20000, 20000)).save(root / "a" / "huge.png")
    return root


LOADERS = [pytest.param(["--loader", "cache"], id="cache"), pytest.param(["--loader", "stream", "--workers", "0"],
                                                                        id="stream")]


def _train(folder: Path, out: Path, extra: list[str], capsys) -> tuple[int, list[str], str]:
    """Exit code, the lines of stderr (never a traceback) and stdout of a one-epoch run on `folder`."""
    try:
        code = main(["train", "lenet5_modern", "--data", str(folder), "--epochs", "1", "--batch-size", "4",
                     "--no-progress", "--output", str(out), *extra])
    except SystemExit as exit_:
        code = exit_.code
    printed, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, err.strip().splitlines(), printed


@pytest.mark.parametrize("loader", LOADERS)
def test_train_names_an_image_over_pils_limit(folder_with_huge_image, loader, tmp_path, capsys, caplog):
    code, lines, _ = _train(folder_with_huge_image, tmp_path / "run", loader, capsys)
    assert code == 2, lines
    assert lines[-1].startswith("convolab train: error: image ") and "huge.png cannot be decoded" in lines[-1]
    assert HUGE in lines[-1] and "--skip-bad-images" in lines[-1]


@pytest.mark.parametrize("loader", LOADERS)
def test_train_skips_and_counts_an_image_over_pils_limit(folder_with_huge_image, loader, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    code, lines, _ = _train(folder_with_huge_image, tmp_path / "run", [*loader, "--skip-bad-images"], capsys)
    assert code == 0, lines
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert skipped and ("huge.png" in skipped[0] or "skipped 1 " in skipped[0]), skipped


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory) -> Path:
    """A folder with a link to nowhere, a link loop, a folder linked to its parent, a class folder that
    is a link to a folder elsewhere, and a readable image whose name is not UTF-8."""

    base = tmp_path_factory.mktemp("odd")
    root = _grey_folder(base / "data")
    os.symlink("/nonexistent/gone.png", root / "a" / "gone.png")
    os.symlink("loop.png", root / "b" / "loop.png")
    os.symlink("..", root / "b" / "up")
    os.symlink(_grey_folder(base / "elsewhere") / "b", root / "c")  # followed, as torchvision's ImageFolder does
    Image.open(root / "a" / "0.png").save(os.fsencode(root / "a") + b"/bad\xff.png", format="PNG")
    return root


@pytest.mark.parametrize("loader", LOADERS)
def test_train_skips_and_counts_links_that_lead_nowhere_and_reads_linked_folders_and_names_not_utf8(
        odd_names, loader, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    code, lines, printed = _train(odd_names, tmp_path / "run", [*loader, "--skip-bad-images"], capsys)
    assert code == 0, lines
    skipped = [r.getMessage() for r in caplog.records if "symbolic links" in r.getMessage()]
    assert skipped and skipped[0].startswith("skipped 3 symbolic links that lead nowhere or into a loop"), skipped
    counts = re.findall(r"\((\d+) train / (\d+) test images", "\n".join([printed, *lines]))
    assert [int(a) + int(b) for a, b in counts] == [19], counts  # 12 + 6 in c/, and the one named b"bad\xff.png"


def test_an_unreadable_image_whose_name_is_not_utf8_is_named(tmp_path, capsys):
    folder = _grey_folder(tmp_path / "data")
    (folder / "a" / os.fsdecode(b"bad\xff.png")).write_bytes(b"not an image")
    code, lines, _ = _train(folder, tmp_path / "run", [], capsys)
    assert code == 2, lines
    assert lines[-1].startswith("convolab train: error: image ") and "a/bad\\xff.png cannot be decoded" in lines[-1]


# ----- a disk that fills up while a run writes its checkpoint -------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, unmounted afterwards; skipped where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}): the full-disk "
                    "case needs root with CAP_SYS_ADMIN")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_previous_checkpoint_resumes(small_disk, capsys):
    run = small_disk / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    before = (run / "last.pt").read_bytes()
    filler = small_disk / "filler"
    filler.write_bytes(bytes(shutil.disk_usage(small_disk).free - 300 * 1024))  # a 750 KB checkpoint won't fit
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    said = r"while writing (best|last)\.pt; the previous \1\.pt is unchanged; the run stopped \(its last\.pt of " \
           r"epoch 1 is intact\): free some space and continue with convolab train --resume"
    assert err.startswith(f"convolab train: error: no space left on the disk of {run} (") and re.search(said, err), err
    assert (run / "last.pt").read_bytes() == before and not list(run.glob(".*.tmp"))  # no partial file left
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    filler.unlink()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()] == ["epoch", "1", "2"]
