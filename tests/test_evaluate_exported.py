"""`convolab evaluate FILE.onnx|FILE.torchscript.pt --data ...`: an export scored on real images as its run's
checkpoint is, to the same figures, on a named data set and on an image folder of fewer classes."""
from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from convolab.cli import main
from convolab.data import load_mnist5k
from convolab.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """lenet5 trained one epoch on the mnist5k digits, its ONNX export (a fixed batch of 7, which the test
    images do not fill) and its TorchScript export."""
    root = tmp_path_factory.mktemp("exported")
    Trainer(TrainConfig(model="lenet5", data="mnist5k", epochs=1, batch_size=32, train_subset=200,
                        progress=False, output=str(root / "run"))).fit()
    assert main(["export", str(root / "run"), "--out", str(root / "m.onnx"), "--batch-size", "7"]) == 0
    assert main(["export", str(root / "run"), "--format", "torchscript", "--out", str(root / "m.torchscript.pt")]) == 0
    return root


def figures(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *argv, "--json"]) == 0
    printed = capsys.readouterr().out
    scored = json.loads(next(line for line in printed.splitlines() if line.startswith("{")))
    return {k: v for k, v in scored.items() if k not in ("files", "tta_from", "evaluated", "checkpoint")}  # (figures)


def digit_folder(root, classes=("3", "7"), each=6):
    """An image folder of real mnist5k test digits of `classes` (PNG), the model knowing all ten."""
    data = load_mnist5k()
    test, names = data.test, data.classes
    for c in classes:
        (root / c).mkdir(parents=True)
        picked = (test.labels == names.index(c)).nonzero().flatten()[:each].tolist()
        for k, i in enumerate(picked):
            Image.fromarray(test.images[i, 0].numpy(), mode="L").save(root / c / f"{k}.png")
    return root


@pytest.mark.parametrize("tta", [None, "flip"])
def test_an_export_scores_the_data_as_its_checkpoint_does(exported, capsys, tta):
    more = ["--tta", tta] if tta else []
    checkpoint = figures(capsys, str(exported / "run"), "--data", "mnist5k", *more)
    assert checkpoint["images"] == 1000 and checkpoint["tta"] == (tta or "none")
    for name in ("m.onnx", "m.torchscript.pt"):
        got = figures(capsys, str(exported / name), "--data", "mnist5k", *more)
        assert got["images"] == checkpoint["images"] and got["tta"] == checkpoint["tta"]
        assert got["top1"] == pytest.approx(checkpoint["top1"], abs=1.5e-3)  # (a tie broken by float round-off)
        assert got["top5"] == pytest.approx(checkpoint["top5"], abs=1.5e-3)
        matrix = exported / f"{name}-evaluation" / "confusion.csv"  # (beside the file, named after it)
        assert matrix.is_file() and (exported / f"{name}-evaluation" / "confusion.png").is_file()


def test_an_export_scores_a_folder_of_some_of_its_classes_as_the_checkpoint(exported, tmp_path, capsys):
    folder = digit_folder(tmp_path / "digits")
    checkpoint = figures(capsys, str(exported / "run"), "--data", str(folder), "--output", str(tmp_path / "a"))
    onnx = figures(capsys, str(exported / "m.onnx"), "--data", str(folder), "--output", str(tmp_path / "b"))
    assert onnx == checkpoint and onnx["images"] == 12
    assert list(onnx["per_class"]) == ["3", "7", "(other classes)"]
    rows = [list(csv.reader((tmp_path / out / "confusion.csv").read_text(encoding="utf-8").splitlines()))
            for out in "ab"]
    assert rows[0] == rows[1]


def test_data_of_classes_the_export_does_not_know_is_one_line(exported, tmp_path, capsys):
    folder = digit_folder(tmp_path / "digits", classes=("3",), each=2)
    (folder / "3").rename(folder / "ant")
    assert main(["evaluate", str(exported / "m.onnx"), "--data", str(folder)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "convolab evaluate: error: the data has 1 of 1 classes the exported model does not know: ant; the exported "
        "model's 10 classes are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9")


def test_predict_on_an_export_gives_the_lines_of_the_files_before_one_that_fails_to_decode(exported, tmp_path,
                                                                                          capsys):
    """As on the checkpoint: the good file's line, then the truncated one's error (before: the error alone)."""
    folder = digit_folder(tmp_path / "digits", classes=("3",), each=1)
    good = folder / "3" / "0.png"
    whole = tmp_path / "whole.png"
    Image.new("L", (64, 64), 7).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:60])  # (its header reads: a failure when decoded, midway)
    for model in (exported / "run", exported / "m.onnx", exported / "m.torchscript.pt"):
        capsys.readouterr()
        assert main(["predict", str(model), str(good), str(cut)]) == 2
        out, err = capsys.readouterr()
        assert out.startswith(f"{good}  ") and len(out.splitlines()) == 1, (model, out)
        assert "cut.png is not a readable image" in err, err
