"""What a tester driving convolab from scripts found: a `~` in --output made a folder named "~" whose run held no
lock (--data expanded it); the training bar redrew into CI logs."""
from __future__ import annotations

import json

from convolab.cli import main
from convolab.training import TrainConfig


def test_a_leading_tilde_is_the_home_folder_in_every_path_argument(tmp_path, monkeypatch, capsys):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "1", "--no-progress", "--output=~/runs/z"]
    assert main(argv) == 0  # (--output=~/x: a word the shell does not expand)
    assert (home / "runs" / "z" / "last.pt").is_file() and list(cwd.iterdir()) == []
    capsys.readouterr()
    assert main(["evaluate", "~/runs/z", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert files and all(f.startswith(str(home / "runs" / "z")) for f in files)
    assert main(["train", "--resume", "~/runs/z", "--epochs", "2", "--no-progress"]) == 0
    assert list(cwd.iterdir()) == []
    assert TrainConfig(model="lenet5", output="~/elsewhere").output == str(home / "elsewhere")


def test_the_training_bar_is_not_drawn_into_a_file_or_a_ci_log(tmp_path, capsys, caplog):
    caplog.set_level("INFO", logger="convolab")
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "2", "--output", str(tmp_path / "run")]) == 0
    assert "\r" not in capsys.readouterr().err  # (before: tqdm's redraws, one per 10 steps)
    assert "epoch 2/2  train loss" in caplog.text  # (the epoch lines say it)


# ----- what an endurance tester found: many runs, many epochs ----------------------------------------------------
def test_no_two_of_many_curves_look_alike():
    from convolab.compare.curves import line_style

    for count in (10, 20, 60, 120):
        looks = [tuple(sorted((k, str(v)) for k, v in line_style(i, count).items())) for i in range(count)]
        assert len(set(looks)) == count  # (before: C{i % 10}: the eleventh drawn as the first)


def test_markers_of_a_long_run_are_about_fifty():
    from convolab.training.metrics import marks

    assert [marks(n) for n in (1, 50, 51, 1000)] == [1, 1, 2, 20]


def test_the_report_of_many_runs_grows_to_hold_its_legend_and_names_them_there(tmp_path, capsys):
    import shutil
    import warnings

    from PIL import Image

    run = tmp_path / "r"
    assert main(["train", "lenet5", "--data", "digits", "--train-subset", "100", "--test-subset", "50",
                 "--batch-size", "50", "--epochs", "2", "--no-progress", "--output", str(run)]) == 0
    for i in range(60):
        shutil.copytree(run, tmp_path / "many" / f"run{i}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (before: matplotlib's "Tight layout not applied" at 80 runs)
        assert main(["report", *sorted(str(p) for p in (tmp_path / "many").iterdir()),
                     "--output", str(tmp_path / "rep")]) == 0
    width, height = Image.open(tmp_path / "rep" / "curves.png").size
    assert (width, height) == (1100, 1200 + (15 - 8) * 22)  # (60 names in 4 columns: 15 rows, 7 past the 8 it held)
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["models"][0]["model"].startswith("lenet5 (")
    capsys.readouterr()


# ----- predict for scripts: --json (JSON Lines) and --skip-bad-images ------------------------------------------------
def test_predict_json_lines_and_skipping_unreadable_files(digits_run, tmp_path, capsys, caplog):
    import numpy as np
    from PIL import Image

    good = []
    for i in range(3):
        path = tmp_path / f"digit {i}.png"  # (a space: no field splitting to get wrong)
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype("uint8")).save(path)
        good.append(str(path))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    whole = (tmp_path / "digit 0.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])  # (its header reads: found when decoded)
    capsys.readouterr()
    assert main(["predict", str(digits_run), *good, "--json", "--topk", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == good
    assert all(len(line["top"]) == 2 and line["top"][0][1] >= line["top"][1][1] for line in lines)
    assert main(["predict", str(digits_run), good[0], str(junk), good[1]]) == 2  # (as before: the first stops it)
    capsys.readouterr()
    caplog.set_level("WARNING", logger="convolab")
    assert main(["predict", str(digits_run), good[0], str(junk), str(truncated), good[1], "--skip-bad-images",
                 "--json"]) == 0
    assert [json.loads(line)["file"] for line in capsys.readouterr().out.splitlines()] == good[:2]
    assert "skipped 2 files that did not read as images" in caplog.text
    assert "junk.png" in caplog.text and "truncated.png" in caplog.text
    assert main(["predict", str(digits_run), str(junk), "--skip-bad-images"]) == 2
    assert "no file given read as an image (1 skipped)" in capsys.readouterr().err


def test_lr_find_json_gives_the_suggestion_as_a_number(tmp_path, capsys):
    assert main(["lr-find", "lenet5_modern", "--data", "digits", "--steps", "30", "--no-progress", "--json",
                 "--output", str(tmp_path / "lrf")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["steps"] == 30 or found["stopped_early"]
    assert found["suggestion"] is None or 1e-7 <= found["suggestion"] <= 10
    assert found["min_loss_lr"] > 0 and all(str(tmp_path / "lrf") in f for f in found["files"])


def test_output_to_a_full_device_is_named_as_the_output_not_the_current_folder():
    import os
    import subprocess
    import sys

    import pytest

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "convolab", "models", "lenet5"], stdout=full, text=True,
                              stderr=subprocess.PIPE, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == (
        "convolab models: error: no space left on the device the output is written to; free some space or write the "
        "output elsewhere")  # (before: "no space left on the disk of . while writing : ...")


def test_a_title_of_many_curves_says_how_many_and_a_few_are_named():
    from convolab.compare.report import _curves_title

    assert _curves_title("digits", ["lenet5", "resnet20"], []) == "digits: lenet5, resnet20"
    assert _curves_title("digits", [f"lenet5 (run{i})" for i in range(120)], []) == "digits: 120 curves, named below"


def test_reproduce_logs_an_arms_options_as_key_value(tmp_path, caplog, capsys):
    caplog.set_level("INFO", logger="convolab")
    assert main(["reproduce", "batchnorm", "--quick", "--data", "digits", "--no-progress", "--output",
                 str(tmp_path / "bn")]) == 0
    assert "lenet5_bn with --model-option batch_norm=False" in caplog.text  # (the command's flags)
    assert "with {'" not in caplog.text  # (before: the arm's options as a Python dict)
    capsys.readouterr()
