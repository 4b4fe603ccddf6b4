"""Review of paths on the command line: a name longer than the system allows (the line names the argument that
gave it, in every form it can be given, and as a command of its own), a loop of links wherever a verb first
meets it, a line break in a path kept out of the one line (also in the error file of a `train --nproc` rank),
and `features --out` kept off the data it reads and off files it did not write."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_png_folder

import convolab.cli.features as features_cli
from convolab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
NAME = "y" * 300  # over the 255 bytes a name may have


def refused(capsys, argv: list[str]) -> str:
    """Exit code 2, one line on stderr, nothing on stdout, no traceback: the line."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2 and not out, (code, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """A run of one epoch on an image folder (the data its checkpoint records): root/run, root/images."""
    root = tmp_path_factory.mktemp("paths")
    images = write_png_folder(root / "images", per_class=4, size=28, classes=("a", "b"), mode="L")
    assert main(["train", "lenet5_modern", "--data", str(images), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--output", str(root / "run")]) == 0
    return root


@pytest.mark.parametrize("form", ["--data", "--data=", "--data ~/", "--data LONG/x"])
def test_a_name_too_long_is_said_of_the_argument_that_gave_it(form, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    value = {"--data ~/": f"~/{NAME}", "--data LONG/x": f"{tmp_path}/{NAME}/x"}.get(form, f"{tmp_path}/{NAME}")
    argv = [f"--data={value}"] if form == "--data=" else ["--data", value]
    line = refused(capsys, ["train", "lenet5", *argv, "--output", str(tmp_path / "run")])
    assert line.startswith(f"convolab train: error: --data {value[:20]}"), line
    assert line.endswith("...: a name in it is longer than the system allows (File name too long); give a shorter "
                         "path (rename or move the file or folder)"), line
    assert len(line) < 250 and not (tmp_path / "run").exists()


def test_a_name_too_long_of_a_positional_argument_is_named_as_argparse_names_it(tmp_path, capsys):
    line = refused(capsys, ["features", str(tmp_path / NAME), "--out", str(tmp_path / "f.npz")])
    assert line.startswith(f"convolab features: error: CHECKPOINT {str(tmp_path)[:20]}"), line


def test_a_resume_too_long_is_one_line_in_a_command_of_its_own(tmp_path):
    """`convolab train --resume LONG` run as a command reads the run's recorded threads first (before: a glob's
    traceback there, outside the verb's error handling)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(tmp_path / NAME)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 2 and not done.stdout, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("convolab train: error: --resume "), done.stderr
    assert "longer than the system allows" in done.stderr


def test_a_loop_of_links_met_anywhere_is_one_line_naming_its_argument(tmp_path, capsys, monkeypatch):
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    checkpoint = str(tmp_path / "loop1")

    def looping(path, *args, **kwargs):
        return os.stat(os.path.join(path, "best.pt"))  # ELOOP, as a look inside the folder meets it

    monkeypatch.setattr(features_cli, "load_checkpoint", looping)
    line = refused(capsys, ["features", checkpoint, "--out", str(tmp_path / "f.npz")])
    assert line.startswith(f"convolab features: error: CHECKPOINT {checkpoint[:40]}"), line
    assert line.endswith(f": its symbolic links lead round in a loop, or nest deeper than the system follows "
                         f"({os.strerror(errno.ELOOP)}); fix the links, or give another path"), line


def test_a_line_break_in_a_path_stays_out_of_a_ranks_error_file(tmp_path, capsys, monkeypatch):
    """A process `train --nproc` started leaves its line in CONVOLAB_ERROR_FILE, which the launcher reads a line
    at a time (before: the path's newline made it two lines there too)."""
    (tmp_path / "bad\nname").mkdir()
    monkeypatch.setenv("CONVOLAB_ERROR_FILE", str(tmp_path / "errors.txt"))
    monkeypatch.setenv("RANK", "1")  # (a rank other than 0 says nothing itself)
    assert main(["train", "lenet5", "--data", str(tmp_path / "bad\nname"), "--output", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ""
    lines = (tmp_path / "errors.txt").read_text().splitlines()
    assert len(lines) == 1 and f"no images found in {tmp_path}/bad\\nname " in lines[0], lines


def test_features_out_in_the_folder_its_checkpoint_was_trained_on_is_refused(folder_run, capsys, monkeypatch):
    """Without --data the features are of the run's own data: an --out among those images is refused as one given
    with --data is, before anything is computed, and the images are as they were."""
    images = folder_run / "images"
    target = images / "train" / "a" / "0.png"
    before = target.read_bytes()
    monkeypatch.setattr(features_cli, "extract_features", lambda *a, **k: pytest.fail("the features were computed"))
    line = refused(capsys, ["features", str(folder_run / "run"), "--out", str(target)])
    assert f"--out {target} lies inside the data folder {images}" in line
    assert target.read_bytes() == before


def test_features_replace_their_own_file_and_refuse_an_npz_of_other_arrays(folder_run, tmp_path, capsys):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.arange(3))
    before = other.read_bytes()
    line = refused(capsys, ["features", str(folder_run / "run"), "--out", str(other)])
    assert f"--out {other} exists and is not a features file `convolab features` wrote" in line
    assert other.read_bytes() == before  # (before: replaced by the features, exit 0)
    out = tmp_path / "f.npz"
    for _ in range(2):  # a second run replaces the features the first wrote
        assert main(["features", str(folder_run / "run"), "--out", str(out)]) == 0
        capsys.readouterr()
        assert {"train_features.npy", "test_features.npy"} <= set(zipfile.ZipFile(out).namelist())
