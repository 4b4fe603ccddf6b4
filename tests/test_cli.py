"""The command line: the README's main job, every bad input as one line with exit code 2."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from convolab.cli import main
from convolab.data import load_data


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "lenet5_modern", "--epochs", "2", "--no-progress", "--output", str(run)])
    assert code == 0
    return run


def test_two_epochs_of_lenet5_modern_on_mnist5k_clear_90_percent(trained_run):
    lines = (trained_run / "metrics.csv").read_text().splitlines()
    assert float(lines[-1].split(",")[6]) >= 0.90


def test_train_last_line_is_test_accuracy(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "lenet", "--data", "digits", "--epochs", "1", "--no-progress",
                           "--output", str(tmp_path / "r"))
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("test accuracy: 0.")


@pytest.mark.parametrize("argv, message", [
    (["train", "lenet6"], "unknown model 'lenet6'; did you mean lenet"),
    (["train", "lenet", "--data", "mnist6k"], "unknown data set 'mnist6k'"),
    (["train", "lenet", "--data", "./no/such/folder"], "does not exist"),
    (["train", "lenet", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "lenet", "--epochs", "-3"], "--epochs: must be a positive integer"),
    (["train", "lenet", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["train", "lenet", "--lr", "0"], "--lr: must be a positive number"),
    (["train", "lenet", "--lr", "-0.1"], "--lr: must be a positive number"),
    (["train", "lenet", "--model-option", "depth=3"], "cannot build lenet5"),
    (["train"], "give a MODEL"),
    (["models", "--nope"], "unrecognized arguments"),
    (["evaluate", "missing-run/best.pt"], "does not exist"),
    (["train", "lenet", "--recipe", "slow"], "argument --recipe: invalid choice: 'slow'"),
    (["train", "lenet", "--tta", "crop"], "argument --tta: invalid choice: 'crop'"),
    (["train", "lenet", "--train-subset", "0"], "--train-subset: must be a positive integer"),
    (["reproduce", "degradaton"], "no experiment named 'degradaton'"),
    (["reproduce", "batchnorm", "--seeds", "0"], "--seeds: must be a positive integer"),
    (["compare", "lenet", "--seeds", "0"], "seeds"),
    # bounds declared on TrainConfig's fields, checked by the generated options
    (["train", "lenet", "--ema", "2"], "--ema: must be a number in (0, 1), got 2.0"),
    (["train", "lenet", "--random-erasing", "2"], "--random-erasing: must be a number in [0, 1], got 2.0"),
    (["train", "lenet", "--label-smoothing", "1.5"], "--label-smoothing: must be a number in [0, 1), got 1.5"),
    (["train", "lenet", "--momentum", "5"], "--momentum: must be a number in [0, 1), got 5.0"),
    (["train", "lenet", "--val-fraction", "1.5"], "--val-fraction: must be a number in [0, 1), got 1.5"),
    (["compare", "lenet", "--budget-seconds", "0"], "--budget-seconds: must be a positive number, got 0.0"),
    (["reproduce", "degradation", "--threads", "0"], "--threads: must be a positive integer, got 0"),
    # an input size the model's layers cannot take, refused before training with the smallest that works
    (["train", "lenet5", "--data", "digits", "--image-size", "3"],
     "--image-size 3 is too small for lenet5 (its layers need at least 28 px); give --image-size 28 or more"),
    (["train", "lenet5_modern", "--data", "digits", "--image-size", "16"],
     "--image-size 16 is too small for lenet5_modern (its layers need at least 28 px)"),
    (["train", "inception_v3", "--data", "digits", "--image-size", "32"],
     "--image-size 32 is too small for inception_v3 (its layers need at least 75 px)"),
    # a batch bigger than the training set would train no step (the last partial batch is dropped)
    (["train", "lenet", "--data", "digits", "--batch-size", "100000"],
     "--batch-size 100000 is larger than the 1438 training images; give at most 1438"),
])
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    code, _, err = run_cli(capsys, "train", "lenet", "--output", str(target))
    assert code == 2 and "is a file" in err
    assert target.read_text() == "keep me"


# Bad inputs that need files: each row's builder makes its input in tmp_path and returns its path, which
# replaces {in} in the argv and the message; {run} is a trained run (the module's fixture).
def a_file(tmp_path):
    """A file where a folder is expected (its content must survive)."""
    (tmp_path / "taken.txt").write_text("keep me")
    return tmp_path / "taken.txt"


def a_read_only_folder(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod cannot make a folder read-only")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    return tmp_path / "ro"


def no_folder(tmp_path):
    return tmp_path / "missing"


def a_two_class_folder(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "two" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (8, 8), i * 20).save(tmp_path / "two" / name / f"{i}.png")
    return tmp_path / "two"


def a_one_class_folder(tmp_path):
    for i in range(10):
        (tmp_path / "one" / "cat").mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), i * 20).save(tmp_path / "one" / "cat" / f"{i}.png")
    return tmp_path / "one"


@pytest.mark.parametrize("build, argv, message", [
    # --output / --out under a file, a file as a folder, a missing folder for a file, a read-only folder
    (a_file, ["evaluate", "{run}", "--output", "{in}/ev"], "--output {in}/ev lies under {in}, which is a file"),
    (a_file, ["evaluate", "{run}", "--output", "{in}"], "--output {in} is a file; give a folder"),
    (a_file, ["features", "{run}", "--out", "{in}/f.npz"], "--out {in}/f.npz lies under {in}, which is a file"),
    (no_folder, ["features", "{run}", "--out", "{in}/f.npz"], "the folder of --out {in}/f.npz does not exist"),
    (a_file, ["report", "{run}", "--output", "{in}/rep"], "--output {in}/rep lies under {in}, which is a file"),
    (a_file, ["draw", "lenet5", "--out", "{in}/m.svg"], "--out {in}/m.svg lies under {in}, which is a file"),
    (a_file, ["compare", "lenet", "--data", "digits", "--output", "{in}/c"], "--output {in}/c lies under {in}"),
    (a_file, ["train", "lenet", "--data", "digits", "--output", "{in}/t"], "--output {in}/t lies under {in}"),
    (a_read_only_folder, ["evaluate", "{run}", "--output", "{in}/ev"], "--output {in}/ev is not writable"),
    (a_read_only_folder, ["features", "{run}", "--out", "{in}/f.npz"], "--out {in}/f.npz is not writable"),
    (a_read_only_folder, ["report", "{run}", "--output", "{in}/rep"], "--output {in}/rep is not writable"),
    (a_read_only_folder, ["draw", "lenet5", "--out", "{in}/m.svg"], "--out {in}/m.svg is not writable"),
    (a_read_only_folder, ["compare", "lenet", "--data", "digits", "--output", "{in}/c"], "is not writable"),
    (a_read_only_folder, ["train", "lenet", "--data", "digits", "--output", "{in}/t"], "is not writable"),
    # data a classifier cannot learn from
    (a_one_class_folder, ["train", "lenet", "--data", "{in}", "--output", "{in}-run"],
     "{in} has one class (cat); a classifier needs two or more class folders"),
    (a_two_class_folder, ["train", "lenet", "--data", "{in}", "--val-fraction", "0.01", "--output", "{in}-run"],
     "{in} yields 20 training and 0 test images; both splits need images (add a test/ folder, or raise "
     "--val-fraction from 0.01)"),
    # a loss that is NaN before any epoch finished: nothing was saved, and the line says so
    (no_folder, ["train", "lenet", "--data", "digits", "--lr", "1e10", "--epochs", "1", "--no-progress",
                 "--output", "{in}"],
     "the training loss became nan at step 10 (epoch 1); lower --lr (now 1e+10) or add --clip-grad; "
     "no epoch finished, so nothing was saved"),
])
def test_bad_input_with_files_is_one_line_on_stderr_with_exit_code_2(request, tmp_path, capsys, build, argv,
                                                                      message):
    place = build(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    run = request.getfixturevalue("trained_run") if "{run}" in argv else None
    code, _, err = run_cli(capsys, *[a.format(**{"in": place, "run": run}) for a in argv])
    assert code == 2
    assert message.format(**{"in": place}) in err and len(err.strip().splitlines()) == 1, err
    assert all(p.is_file() and p.read_bytes() == data for p, data in before.items())  # nothing lost


def test_console_script_reports_errors_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "convolab", "train", "resnet2O"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "did you mean" in proc.stderr


def test_models_lists_lenet5_with_its_parameter_count(capsys):
    code, out, _ = run_cli(capsys, "models", "lenet*")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("lenet5 "))
    assert "61,706" in row and "416,520" in row and "1x28x28" in row


def test_evaluate_prints_top1_top5_and_writes_the_confusion_matrix(trained_run, capsys):
    code, out, _ = run_cli(capsys, "evaluate", str(trained_run), "--output", str(trained_run / "ev"))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[-2].startswith("top-1 accuracy: 0.9") and lines[-1].startswith("top-5 accuracy: ")
    confusion = (trained_run / "ev" / "confusion.csv").read_text().splitlines()
    assert len(confusion) == 11 and sum(int(v) for row in confusion[1:] for v in row.split(",")[1:]) == 1000
    assert (trained_run / "ev" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_names_the_class_of_real_digit_images(trained_run, tmp_path, capsys):
    data = load_data("mnist5k")
    paths = []
    for i in range(6):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(data.test.images[i * 100, 0].numpy()).save(path)
        paths.append(str(path))
    code, out, _ = run_cli(capsys, "predict", str(trained_run), *paths, "--topk", "3")
    assert code == 0
    predicted = [line.split()[1] for line in out.strip().splitlines()]
    truth = [str(int(data.test.labels[i * 100])) for i in range(6)]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 5
    assert all(len(line.split()) == 7 for line in out.strip().splitlines())  # path, top-1, p, 2 more pairs


def test_predict_and_evaluate_refuse_a_corrupt_checkpoint_and_a_missing_image(trained_run, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained_run / "last.pt").read_bytes()[:1000])
    code, _, err = run_cli(capsys, "evaluate", str(bad))
    assert code == 2 and "not a readable checkpoint" in err
    code, _, err = run_cli(capsys, "predict", str(trained_run), str(tmp_path / "none.png"))
    assert code == 2 and "does not exist" in err
    assert torch.load(trained_run / "last.pt", weights_only=True)["epoch"] == 2  # untouched


def test_predict_runs_an_exported_onnx_model_like_its_checkpoint(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    data = load_data("mnist5k")
    path = tmp_path / "digit.png"
    Image.fromarray(data.test.images[7, 0].numpy()).save(path)
    code, _, _ = run_cli(capsys, "export", str(trained_run), "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert code == 0
    _, from_checkpoint, _ = run_cli(capsys, "predict", str(trained_run), str(path))
    _, from_onnx, _ = run_cli(capsys, "predict", str(tmp_path / "m.onnx"), str(path))
    assert from_onnx.split()[1] == from_checkpoint.split()[1]
    assert abs(float(from_onnx.split()[2]) - float(from_checkpoint.split()[2])) < 1e-3
