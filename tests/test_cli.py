"""The command line: the README's main job and what each verb prints (bad inputs: tests/test_bad_inputs.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

from convolab.cli import main
from convolab.data import load_data
from convolab.errors import ConfigError
from convolab.training.device import resolve_device


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


def test_console_script_reports_errors_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "convolab", "train", "resnet2O"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "did you mean" in proc.stderr


def test_a_reader_that_leaves_early_stops_the_command_quietly():
    """`convolab models | head -3`: the pipe closes before the listing is written; no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "convolab", "models", "lenet*"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # (before the command, still importing, writes its first line)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == "", err


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


def test_ctrl_c_while_the_verbs_still_import_is_one_line_and_130(monkeypatch, capsys):
    import convolab.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)  # where Ctrl-C lands in the first seconds
    assert cli.main(["train", "lenet5", "--epochs", "1"]) == 130
    assert capsys.readouterr().err == "convolab train: interrupted\n"
    assert cli.main(["--version"]) == 130 and capsys.readouterr().err == "convolab: interrupted\n"


INTERRUPTED_IMPORT = """
import sys
class CtrlC:  # Ctrl-C landing while convolab imports torch and its own modules
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = [{argv0!r}]
from convolab.cli import main
"""


@pytest.mark.parametrize("module", [pytest.param("convolab.pretrained", marks=pytest.mark.slow),  # (5 s each)
                                    "convolab.training"])
def test_ctrl_c_while_the_command_imports_convolab_is_one_line_and_130(module):
    script = INTERRUPTED_IMPORT.format(module=module, argv0="/venv/bin/convolab")
    command = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (command.returncode, command.stderr) == (130, "convolab: interrupted\n")
    # a program of the user's that imports convolab keeps its own KeyboardInterrupt
    program = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT.format(module=module, argv0="mine.py")],
                             capture_output=True, text=True, timeout=120)
    assert program.returncode != 130 and "KeyboardInterrupt" in program.stderr


def test_predict_reads_an_onnx_file_whose_suffix_is_upper_case(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    image = tmp_path / "digit.png"
    Image.fromarray(load_data("mnist5k").test.images[3, 0].numpy()).save(image)
    code, _, _ = run_cli(capsys, "export", str(trained_run), "--out", str(tmp_path / "Model.ONNX"))
    assert code == 0
    code, from_onnx, err = run_cli(capsys, "predict", str(tmp_path / "Model.ONNX"), str(image))
    assert code == 0, err
    _, from_checkpoint, _ = run_cli(capsys, "predict", str(trained_run), str(image))
    assert from_onnx.split()[1] == from_checkpoint.split()[1]


@pytest.mark.parametrize("verb", ["train", "evaluate"])
@pytest.mark.parametrize("device, words", [
    ("cuda:1", "--device cuda:1 was asked for but no CUDA device is available; use --device cpu or auto"),
    ("cuda:x", "--device cuda:x: the CUDA device index must be a non-negative whole number, e.g. cuda:0, got 'x'"),
    ("cuda:-1", "the CUDA device index must be a non-negative whole number"),
])
def test_a_cuda_device_this_machine_lacks_is_one_line(trained_run, tmp_path, capsys, monkeypatch, verb, device,
                                                        words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # (the same on a machine with a GPU)
    argv = ["train", "lenet", "--data", "digits", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "r")] \
        if verb == "train" else ["evaluate", str(trained_run), "--output", str(tmp_path / "ev")]
    code, _, err = run_cli(capsys, *argv, "--device", device)
    assert code == 2
    assert err.startswith(f"convolab {verb}: error: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "ev").exists()


def test_a_cuda_index_past_the_devices_there_are_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"`device` cuda:2: this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
