"""Bad inputs, one row each: the verb's argv (built from files a fixture makes), the words its one
error line must hold. Every row: exit code 2, exactly one line on stderr starting `convolab VERB:
error:`, no traceback, no internals (object reprs), and no warning or log line before it. The next
bad input is one more row."""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import write_png_folder

from convolab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def _grey_folder(root: Path) -> Path:
    return write_png_folder(root, per_class=6, size=28, classes=("a", "b"), mode="L", split_dirs=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A run trained for one epoch on the digits and the bad files made from it, in one folder."""
    from PIL import Image

    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    (root / "junk.pt").write_bytes(os.urandom(4096))  # random bytes
    ckpt = torch.load(run / "best.pt", weights_only=True)
    torch.save({**ckpt, "num_classes": 5}, root / "other_classes.pt")  # weights for 10 classes, record says 5
    torch.save({k: v for k, v in ckpt.items() if k not in ("model", "ema")}, root / "no_weights.pt")
    torch.save({**ckpt, "preprocess": "center-crop"}, root / "crop.pt")  # predict reads centre crops of bytes
    Image.new("L", (28, 28)).save(root / "digit.png")
    (root / "broken.png").write_bytes(b"these bytes are not an image")
    Image.new("1", (20000, 20000)).save(root / "huge.png")  # 400 M pixels, over PIL's limit; 48 KB, under 1 s
    os.symlink("/nonexistent/gone.png", _grey_folder(root / "dangling") / "a" / "gone.png")
    os.symlink("/nonexistent/gone.png", root / "gone.png")
    os.symlink("loop.png", _grey_folder(root / "loop") / "a" / "loop.png")
    os.symlink("..", _grey_folder(root / "folder_loop") / "a" / "up")
    assert main(["export", str(run), "--format", "torchscript", "--out", str(root / "model.torchscript.pt")]) == 0
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        assert main(["export", str(run), "--out", str(root / "model.onnx")]) == 0
    return root


Argv = Callable[[Path], list[str]]
UNREADABLE = "is not a readable checkpoint: not a zip archive"
MISMATCH = "its weights do not match its own model record (lenet5_modern, 5 classes): head.fc.weight is 10x84"
NO_WEIGHTS = "holds no model weights (no 'model' entry)"
BAD_IMAGE = "broken.png is not a readable image (not an image format PIL recognises)"
TORCHSCRIPT = "model.torchscript.pt is a TorchScript export"
HUGE = "400 M pixels, over PIL's limit of 179 M that guards against decompression bombs: resize it"

CASES: list[tuple[str, Argv, str, tuple[str, ...]]] = [
    # (id, argv from the fixture's folder, words the line holds, modules made unimportable)
    ("evaluate-random-bytes", lambda d: ["evaluate", str(d / "junk.pt")], UNREADABLE, ()),
    ("predict-random-bytes", lambda d: ["predict", str(d / "junk.pt"), str(d / "digit.png")], UNREADABLE, ()),
    ("evaluate-weights-of-another-model", lambda d: ["evaluate", str(d / "other_classes.pt")], MISMATCH, ()),
    ("predict-weights-of-another-model", lambda d: ["predict", str(d / "other_classes.pt"), str(d / "digit.png")],
     MISMATCH, ()),
    ("export-weights-of-another-model", lambda d: ["export", str(d / "other_classes.pt")], MISMATCH, ()),
    ("evaluate-no-weights", lambda d: ["evaluate", str(d / "no_weights.pt")], NO_WEIGHTS, ()),
    ("predict-no-weights", lambda d: ["predict", str(d / "no_weights.pt"), str(d / "digit.png")], NO_WEIGHTS, ()),
    ("export-no-weights", lambda d: ["export", str(d / "no_weights.pt")], NO_WEIGHTS, ()),
    ("predict-unreadable-image", lambda d: ["predict", str(d / "run"), str(d / "broken.png")], BAD_IMAGE, ()),
    ("predict-unreadable-image-centre-crop", lambda d: ["predict", str(d / "crop.pt"), str(d / "broken.png")],
     BAD_IMAGE, ()),
    ("predict-onnx-unreadable-image", lambda d: ["predict", str(d / "model.onnx"), str(d / "broken.png")],
     BAD_IMAGE, ()),
    ("predict-torchscript-file", lambda d: ["predict", str(d / "model.torchscript.pt"), str(d / "digit.png")],
     TORCHSCRIPT, ()),
    ("evaluate-torchscript-file", lambda d: ["evaluate", str(d / "model.torchscript.pt")], TORCHSCRIPT, ()),
    ("predict-onnx-without-onnxruntime", lambda d: ["predict", str(d / "model.onnx"), str(d / "digit.png")],
     "predicting with an .onnx file needs onnxruntime, which is not installed: pip install onnxruntime",
     ("onnxruntime",)),
    ("predict-image-over-pil-limit", lambda d: ["predict", str(d / "run"), str(d / "huge.png")],
     f"huge.png is too large to decode: {HUGE}", ()),
    ("predict-image-over-pil-limit-centre-crop", lambda d: ["predict", str(d / "crop.pt"), str(d / "huge.png")],
     f"huge.png is too large to decode: {HUGE}", ()),
    ("predict-dangling-symlink", lambda d: ["predict", str(d / "run"), str(d / "gone.png")],
     "gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist; fix the link", ()),
    # symbolic links in a data folder that lead nowhere: named before anything is decoded
    ("train-dangling-symlink", lambda d: ["train", "lenet5_modern", "--data", str(d / "dangling"),
                                          "--output", str(d / "unused")],
     "dangling/a/gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist; fix or remove "
     "the link, or pass --skip-bad-images", ()),
    ("train-dangling-symlink-stream", lambda d: ["train", "lenet5_modern", "--data", str(d / "dangling"),
                                                 "--loader", "stream", "--output", str(d / "unused")],
     "dangling/a/gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist", ()),
    ("train-symlink-loop", lambda d: ["train", "lenet5_modern", "--data", str(d / "loop"),
                                      "--output", str(d / "unused")],
     "loop/a/loop.png is a symbolic link that leads back to itself (a loop); fix or remove the link", ()),
    ("train-symlink-loop-stream", lambda d: ["train", "lenet5_modern", "--data", str(d / "loop"),
                                             "--loader", "stream", "--output", str(d / "unused")],
     "loop/a/loop.png is a symbolic link that leads back to itself (a loop)", ()),
    ("train-folder-symlink-loop", lambda d: ["train", "lenet5_modern", "--data", str(d / "folder_loop"),
                                             "--output", str(d / "unused")],
     "folder_loop/a/up is a symbolic link to a folder that holds it (a loop); fix or remove the link", ()),
    # sizes no device could hold: arithmetic only, refused before anything is allocated
    ("cost-huge-kernel", lambda d: ["cost", "--input", "3x224x224", "99999x99999:1"],
     "layer 99999x99999:1's weight tensor 1x3x99999x99999 would be 112 GiB in float32", ()),
    ("cost-huge-input", lambda d: ["cost", "--input", "3x99999x99999", "3x3:64"],
     "the input 3x99999x99999 at batch 1 would be 112 GiB in float32", ()),
    ("summary-huge-input", lambda d: ["summary", "resnet18", "--input-size", "3,99999,99999"],
     "--input-size 3,99999,99999: the input at batch 1 would be 112 GiB in float32", ()),
    ("summary-huge-feature-map", lambda d: ["summary", "resnet18", "--input-size", "3,20000,20000"],
     "conv1's output 1x64x10000x10000 would be 24 GiB in float32", ()),
]


@pytest.mark.parametrize("argv,words,hidden", [pytest.param(*row[1:], id=row[0]) for row in CASES])
def test_bad_input_is_one_line_exit_2(files, argv, words, hidden, capsys, caplog, monkeypatch):
    args = argv(files)
    if any(a.endswith(".onnx") for a in args) and not (files / "model.onnx").exists():
        pytest.skip("onnx and onnxruntime are not installed (pip install -e '.[export]')")
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"convolab {args[0]}: error: "), err
    assert words in lines[0], lines[0]
    assert "Traceback" not in err and "object at 0x" not in err and not out, err
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records] == []


# ----- bad files inside a training folder: the run's log lines come first, so not rows of the table --------
@pytest.fixture(scope="module")
def folder_with_huge_image(tmp_path_factory) -> Path:
    """Two classes of 28 px grey PNGs, and in one of them a 20000 x 20000 PNG (over PIL's limit)."""
    from PIL import Image

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
    from PIL import Image

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
