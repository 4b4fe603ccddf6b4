"""Bad inputs, one row each, in one table: the verb's argv, the words its one error line must hold, and
what the row needs made first. Every row: exit code 2, exactly one line on stderr starting `convolab VERB:
error:`, no traceback, no internals (object reprs), no warning or log line, nothing on stdout, every
file that existed before the command still there, byte for byte, and nothing new left in the row's folder
(no half-made output folder). The next bad input is one more row.

Placeholders in argv and words: {d} is the module's folder of bad files (a trained run, junk checkpoints,
broken images, links), {t} is the row's own temporary folder, which the row's `make` fills first."""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from conftest import write_png_folder
from PIL import Image

import convolab
from convolab._platform import usable_cores
from convolab.cli import build_parser, main
from convolab.cli._options import ARGUMENT, flags_of
from convolab.data import load_data
from convolab.export import export_program

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

# Every verb's options by their Python names (and the library's names for them): none is left in backquotes in a line
OPTION_NAMES = {name for verb in next(a for a in build_parser()._actions if hasattr(a, "choices") and
                                      isinstance(a.choices, dict)).choices.values() for name in flags_of(verb)}


def _grey_folder(root: Path) -> Path:
    return write_png_folder(root, per_class=6, size=28, classes=("a", "b"), mode="L", split_dirs=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A run trained for one epoch on the digits and the bad files made from it, in one folder."""
    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    (root / "junk.pt").write_bytes(random.Random(0).randbytes(4096))  # random bytes, the same in every run
    ckpt = torch.load(run / "best.pt", weights_only=True)
    torch.save({**ckpt, "num_classes": 5, "classes": list("01234")}, root / "other_classes.pt")  # 10 classes of weights
    torch.save({k: v for k, v in ckpt.items() if k not in ("model", "ema")}, root / "no_weights.pt")
    torch.save({**ckpt, "preprocess": "center-crop"}, root / "crop.pt")  # predict reads centre crops of bytes
    (root / "truncated.pt").write_bytes((run / "last.pt").read_bytes()[:1000])
    Image.new("L", (28, 28)).save(root / "digit.png")
    (root / "broken.png").write_bytes(b"these bytes are not an image")
    Image.new("1", (20000, 20000)).save(root / "huge.png")  # 400 M pixels, over PIL's limit; 48 KB, under 1 s
    Image.new("1", (10000, 10000)).save(root / "large.png")  # 100 M pixels: over PIL's warning, under its limit
    os.symlink("/nonexistent/gone.png", _grey_folder(root / "dangling") / "a" / "gone.png")
    os.symlink("/nonexistent/gone.png", root / "gone.png")
    os.symlink("loop.png", _grey_folder(root / "loop") / "a" / "loop.png")
    os.symlink("..", _grey_folder(root / "folder_loop") / "a" / "up")
    assert main(["export", str(run), "--format", "torchscript", "--out", str(root / "model.torchscript.pt")]) == 0
    shutil.copyfile(root / "model.torchscript.pt", root / "colleague.pt")  # a TorchScript program under another name
    extra = {"convolab.json": ""}  # metadata of 3 classes for the model's 10 outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        module = torch.jit.load(str(root / "model.torchscript.pt"), _extra_files=extra)
        meta = {**json.loads(extra["convolab.json"]), "classes": '["a", "b", "c"]'}
        torch.jit.save(module, str(root / "three_classes.torchscript.pt"),
                       _extra_files={"convolab.json": json.dumps(meta)})
    assert main(["export", str(run), "--format", "safetensors", "--out", str(root / "st")]) == 0
    shutil.copytree(root / "st", root / "st_truncated")
    (root / "st_truncated" / "model.safetensors").write_bytes((root / "st" / "model.safetensors").read_bytes()[:999])
    st_config = json.loads((root / "st" / "config.json").read_text())  # safetensors configs edited by hand
    for name, edit in (("st_mean", {"mean": 0.3}), ("st_std", {"std": [0]}), ("st_size", {"image_size": 28}),
                       ("st_classes", {"classes": list("012345678")})):
        shutil.copytree(root / "st", root / name)
        (root / name / "config.json").write_text(json.dumps({**st_config, **edit}))
    shutil.copytree(root / "st", root / "st_utf16")  # its config.json saved as UTF-16 by an editor
    (root / "st_utf16" / "config.json").write_text((root / "st" / "config.json").read_text(), encoding="utf-16")
    torch.save({**ckpt, "classes": list("012345678")}, root / "nine_classes.pt")  # 9 names for 10 outputs
    torch.save({**ckpt, "image_size": [32, 32]}, root / "wrong_size.pt")  # lenet5_modern takes 28 px
    for name, edit in (("run_shape", lambda c: c["model"].__setitem__("features.0.weight", torch.zeros(3, 3))),
                       ("run_noopt", lambda c: c.pop("optimizer")),
                       ("run_epoch", lambda c: c.__setitem__("epoch", -5))):
        shutil.copytree(run, root / name)  # last.pt edited by hand: a resume refuses it in one line
        last = torch.load(root / name / "last.pt", weights_only=True)
        edit(last)
        torch.save(last, root / name / "last.pt")
    run_config = json.loads((run / "config.json").read_text())
    for name, edit in (("run_cfg", {"batch_size": 32}), ("run_word", {"epochs": "abc"})):  # config.json edited
        shutil.copytree(run, root / name)
        (root / name / "config.json").write_text(json.dumps({**run_config, **edit}))
    diverged = {k: v.clone() for k, v in ckpt["model"].items()}  # as a run whose loss became NaN leaves them
    next(iter(diverged.values())).fill_(float("nan"))
    torch.save({**ckpt, "model": diverged}, root / "diverged.pt")
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    else:
        assert main(["export", str(run), "--out", str(root / "model.onnx")]) == 0
        proto = onnx.load(str(root / "model.onnx"))  # metadata of 3 classes for the model's 10 outputs
        next(p for p in proto.metadata_props if p.key == "classes").value = '["a", "b", "c"]'
        onnx.save(proto, str(root / "three_classes.onnx"))
        proto = onnx.load(str(root / "model.onnx"))  # metadata edited: a std of 0 (the inputs are divided by it)
        next(p for p in proto.metadata_props if p.key == "std").value = "[0.0]"
        onnx.save(proto, str(root / "std_zero.onnx"))
    return root


# ----- what a row makes in its own folder {t} first ---------------------------------------------------------
def a_file(t: Path) -> None:
    """A file where a folder is expected (its content must survive)."""
    (t / "taken.txt").write_text("keep me")


def a_fifo(t: Path) -> None:
    """{t}/fifo: a named pipe, where a file is expected (it must stay a pipe)."""
    os.mkfifo(t / "fifo")


def a_read_only_folder(t: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod cannot make a folder read-only")
    (t / "ro").mkdir()
    (t / "ro").chmod(0o555)


def a_tar_with_a_link_outside_it(t: Path) -> None:
    a_two_class_folder(t)
    with tarfile.open(t / "linked.tar", "w") as tar:
        tar.add(t / "two", arcname="two")
        link = tarfile.TarInfo("two/cat/outside.png")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../elsewhere/x.png"
        tar.addfile(link)


def a_tar_with_a_member_named_with_dotdot(t: Path) -> None:
    """{t}/up.tar: {t}/two's images as two/cat/..., and one more image named ../x/c.png (which tar -x refuses)."""
    a_two_class_folder(t)
    with tarfile.open(t / "up.tar", "w") as tar:
        tar.add(t / "two", arcname="two")
        tar.add(t / "two" / "cat" / "0.png", arcname="../x/c.png")


def a_folder_with_a_link_to_dev_zero(t: Path) -> None:
    """{t}/z: a grey image folder whose z/a/evil.png is a symbolic link to /dev/zero (read, it never ends)."""
    os.symlink("/dev/zero", _grey_folder(t / "z") / "a" / "evil.png")


def a_folder_with_a_fifo(t: Path) -> None:
    """{t}/z: a grey image folder whose z/a/pipe.png is a named pipe (read, it waits for a writer for ever)."""
    os.mkfifo(_grey_folder(t / "z") / "a" / "pipe.png")


def a_fifo_named_csv(t: Path) -> None:
    os.mkfifo(t / "fifo.csv")


def a_two_class_folder(t: Path) -> None:
    for name in ("cat", "dog"):
        (t / "two" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (8, 8), i * 20).save(t / "two" / name / f"{i}.png")


def a_run_whose_class_folder_was_renamed(t: Path) -> None:
    """{t}/r: one epoch on {t}/two (cat, dog), whose dog folder is then renamed wolf."""
    a_two_class_folder(t)
    assert main(["train", "lenet5_modern", "--data", str(t / "two"), "--val-fraction", "0.5", "--epochs", "1",
                 "--batch-size", "4", "--no-progress", "--output", str(t / "r")]) == 0
    (t / "two" / "dog").rename(t / "two" / "wolf")
    load_data(str(t / "two"), val_fraction=0.5)  # the image cache of the renamed folder (its making is logged)


def a_run_of_two_batches_a_step(t: Path) -> None:
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--accumulate", "2", "--no-progress",
                 "--output", str(t / "run")]) == 0


def a_run_of_an_own_model_stopped_early(t: Path) -> None:
    """{t}/r: a run folder as a run of a model of no registered name (Trainer(config, model=...)) leaves it when
    killed before its first checkpoint: config.json (marked own_model) and nothing to resume."""
    a_two_class_folder(t)
    assert main(["train", "lenet5_modern", "--data", str(t / "two"), "--val-fraction", "0.5", "--epochs", "1",
                 "--batch-size", "4", "--no-progress", "--output", str(t / "r")]) == 0
    for name in ("best.pt", "last.pt"):
        (t / "r" / name).unlink()
    config = json.loads((t / "r" / "config.json").read_text())
    (t / "r" / "config.json").write_text(json.dumps({**config, "own_model": True}))


def a_run_of_another_layout(t: Path, layout: int | None = None) -> None:
    """{t}/r: preact_resnet164 trained for two steps of 8 px images on {t}/two, its checkpoints rewritten as of
    layout revision 1 (before its stride moved; the convolab that wrote them unrecorded), or as a newer one."""
    a_two_class_folder(t)
    assert main(["train", "preact_resnet164", "--data", str(t / "two"), "--val-fraction", "0.5", "--epochs", "1",
                 "--batch-size", "4", "--image-size", "8", "--no-progress", "--output", str(t / "r")]) == 0
    for name in ("best.pt", "last.pt"):
        state = torch.load(t / "r" / name, weights_only=True)
        state = {k: v for k, v in state.items() if k not in ("layout", "convolab_version")}
        torch.save({**state, **({"layout": layout, "convolab_version": "9.9.0"} if layout else {"layout": 1})},
                   t / "r" / name)


def a_one_class_folder(t: Path) -> None:
    (t / "one" / "cat").mkdir(parents=True)
    for i in range(10):
        Image.new("L", (8, 8), i * 20).save(t / "one" / "cat" / f"{i}.png")


def a_truncated_resnet18_weights_file(t: Path) -> None:
    """torchvision's resnet18 weights, cut short, under the name torch.hub caches them in $TORCH_HOME."""
    (t / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (t / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(random.Random(1).randbytes(999))


def a_labels_csv(t: Path, edit: Callable[[list[str], list[list[str]]], None] | None = None) -> None:
    """{t}/labels.csv: 12 grey 28 px images with two class columns and a numeric one, `edit`ed first."""
    header = ["image", "species", "colour", "age"]
    rows = [[f"{i}.png", ("cat", "dog")[i % 2], ("red", "blue")[i // 2 % 2], str(3 + i)] for i in range(12)]
    for i in range(12):
        Image.new("L", (28, 28), 20 * i).save(t / f"{i}.png")
    if edit:
        edit(header, rows)
    (t / "labels.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")


def a_run_with_a_numeric_input(t: Path) -> None:
    """{t}/num: one epoch on {t}/labels.csv with its age column as a second input."""
    a_labels_csv(t)
    assert main(["train", "lenet5_modern", "--data", str(t / "labels.csv"), "--inputs", "image,age", "--targets",
                 "species", "--epochs", "1", "--batch-size", "4", "--no-progress", "--output", str(t / "num")]) == 0


def an_onnx_model_of_two_image_inputs(t: Path) -> None:
    """{t}/two.onnx: the export of one epoch on a labels CSV whose items are two images each."""
    a_labels_csv(t, lambda header, rows: ([header.append("image2")], [r.append(f"{(i + 1) % 12}.png")
                                                                      for i, r in enumerate(rows)]))
    assert main(["train", "lenet5_modern", "--data", str(t / "labels.csv"), "--inputs", "image,image2", "--targets",
                 "species", "--epochs", "1", "--batch-size", "4", "--no-progress", "--output", str(t / "two")]) == 0
    assert main(["export", str(t / "two"), "--out", str(t / "two.onnx")]) == 0


def a_run_of_two_images_and_three_targets(t: Path) -> None:
    """{t}/two3: one epoch on {t}/labels.csv, each item its image and an image2, learning species, colour and age."""
    a_labels_csv(t, lambda header, rows: ([header.append("image2")], [r.append(f"{(i + 1) % 12}.png")
                                                                      for i, r in enumerate(rows)]))
    assert main(["train", "lenet5_modern", "--data", str(t / "labels.csv"), "--inputs", "image,image2",
                 "--epochs", "1", "--batch-size", "4", "--no-progress", "--output", str(t / "two3")]) == 0


def a_two_head_run_and_a_labels_csv(t: Path) -> None:
    """{t}/th: lenet5_two_head (the digit and its parity) one epoch on the digits; {t}/labels.csv (no parity)."""
    a_labels_csv(t)
    assert main(["train", "lenet5_two_head", "--data", "digits", "--extra-target", "parity", "--epochs", "1",
                 "--no-progress", "--output", str(t / "th")]) == 0


def a_torchscript_model_of_two_image_inputs(t: Path) -> None:
    """{t}/two.torchscript.pt: as above, exported to TorchScript."""
    an_onnx_model_of_two_image_inputs(t)
    assert main(["export", str(t / "two"), "--format", "torchscript", "--out", str(t / "two.torchscript.pt")]) == 0


def an_onnx_model_of_anothers(t: Path) -> None:
    """{t}/plain.onnx: an ONNX file another tool wrote (no convolab metadata)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
        torch.onnx.export(plain, (torch.zeros(1, 1, 28, 28),), str(t / "plain.onnx"), dynamo=False)


def corrupt_exports(t: Path) -> None:
    """{t}/bad.onnx and {t}/bad.torchscript.pt: random bytes under an export's names."""
    for name in ("bad.onnx", "bad.torchscript.pt"):
        (t / name).write_bytes(random.Random(1).randbytes(100))


def programs(t: Path) -> None:
    """{t}/model.pt2 (a lenet5_modern exported by `export_program`), {t}/cut.pt2 (its first 3000 bytes) and
    {t}/bad.pt2 (random bytes)."""
    export_program(convolab.create_model("lenet5_modern"), t / "model.pt2", (1, 28, 28))
    (t / "cut.pt2").write_bytes((t / "model.pt2").read_bytes()[:3000])
    (t / "bad.pt2").write_bytes(random.Random(1).randbytes(100))


def an_experiment(t: Path) -> None:
    """{t}/experiment.json: the record of a `convolab reproduce` experiment folder (its curves.png beside it)."""
    (t / "experiment.json").write_text("{}")
    (t / "curves.png").write_bytes(b"the experiment's own curves")


def an_older_experiment(t: Path) -> None:
    """{t}/reproduce.json and reproduce.md beside its curves.png: an experiment an older convolab wrote (no
    experiment.json, which came with reproduce --resume)."""
    (t / "reproduce.json").write_text('{"experiment": "batchnorm"}')
    (t / "reproduce.md").write_text("# batchnorm\n")
    (t / "curves.png").write_bytes(b"the experiment's own curves")


def a_folder_with_another_tools_config(t: Path) -> None:
    """{t}/other/config.json, written by something else (its content must survive)."""
    (t / "other").mkdir()
    (t / "other" / "config.json").write_text('{"tool": "not convolab"}\n')


def a_safetensors_config(t: Path) -> None:
    """{t}/sf/config.json as a safetensors export writes it: a model's record, not a run's options."""
    (t / "sf").mkdir()
    (t / "sf" / "config.json").write_text('{"model_name": "lenet5_modern", "num_classes": 10}')


def a_comparison_record(t: Path) -> None:
    """{t}/compare.json, as a comparison's folder holds it (only its presence counts here)."""
    (t / "compare.json").write_text("{}")


COMPARE_JSON = {"format": "convolab-compare-1", "models": ["lenet5"], "command": "convolab compare lenet5",
                "config": {"model": "", "data": "digits", "epochs": 1}, "resumed_by": [], "statuses": {}}
EXPERIMENT_JSON = {"format": "convolab-reproduce-1", "experiment": "batchnorm", "quick": True, "seeds": 1,
                   "config": {"model": "", "data": "digits"}, "resumed_by": [],
                   "command": "convolab reproduce batchnorm --quick --data digits"}


def a_record(name: str, doc: object, encoding: str = "utf-8") -> Callable[[Path], None]:
    """{t}/c/`name` holding `doc` (a compare.json or experiment.json edited by hand, or saved in `encoding`)."""
    def make(t: Path) -> None:
        (t / "c" / name).parent.mkdir(parents=True)
        (t / "c" / name).write_text(json.dumps(doc), encoding=encoding)
    return make


def an_experiment_with_a_comparison_record(doc: object) -> Callable[[Path], None]:
    """{t}/c: an experiment (its experiment.json as written) whose first comparison's compare.json holds `doc`."""
    def make(t: Path) -> None:
        a_record("experiment.json", EXPERIMENT_JSON)(t)
        a_record("seed-0/arm-1/compare.json", doc)(t)
    return make


def csv_edited(edit: Callable[[list[str], list[list[str]]], None]) -> Callable[[Path], None]:
    return lambda t: a_labels_csv(t, edit)


def _no_image_column(header: list[str], rows: list[list[str]]) -> None:
    header[0] = "picture"
    for r in rows:
        r[0] = r[0][:-4]  # no suffix and no usual name: nothing says which column holds images


def _same_image_twice(header: list[str], rows: list[list[str]]) -> None:
    rows[7][0] = rows[2][0]  # line 9 lists 2.png again, as a dog of 10 where line 4 has a cat of 5


def _same_pair_twice(header: list[str], rows: list[list[str]]) -> None:
    header.append("image2")
    for i, r in enumerate(rows):
        r.append(f"{(i + 1) % 12}.png")
    rows[7][0], rows[7][4] = rows[2][0], rows[2][4]  # line 9 lists the pair 2.png, 3.png again


def _a_test_only_class(header: list[str], rows: list[list[str]]) -> None:
    header.append("split")
    for i, r in enumerate(rows):
        r.append("test" if i >= 8 else "train")
    rows[9][1] = "bird"  # line 11: a test row of a species no training row has


def a_split_folder_with_a_loose_image(t: Path) -> None:
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (t / "s" / split / name).mkdir(parents=True)
            for i in range(4):
                Image.new("L", (8, 8), i * 20).save(t / "s" / split / name / f"{i}.png")
    Image.new("L", (8, 8)).save(t / "s" / "train" / "preview.png")


def a_test_split_named_unlike_training(t: Path) -> None:
    a_split_folder_with_a_loose_image(t)
    (t / "s" / "train" / "preview.png").unlink()
    (t / "s" / "test" / "cat").rename(t / "s" / "test" / "Cat")


def a_folder_of_other_split_names(t: Path) -> None:
    """{t}/s: train_set/ and test_set/ of class folders (Kaggle's names, which convolab does not read as splits)."""
    write_png_folder(t / "s", per_class=4, size=8, classes=("cat", "dog"), mode="L")
    (t / "s" / "train").rename(t / "s" / "train_set")
    (t / "s" / "test").rename(t / "s" / "test_set")


def a_split_folder_beside_an_unlabeled_folder(t: Path) -> None:
    a_split_folder_with_a_loose_image(t)
    (t / "s" / "unlabeled").mkdir()
    (t / "s" / "train" / "preview.png").rename(t / "s" / "unlabeled" / "preview.png")


def a_cached_folder_then_empty_class_folders(t: Path) -> None:
    """{t}/s trained on once (so its images are cached), then an empty class folder made in train/ and test/."""
    a_split_folder_with_a_loose_image(t)
    (t / "s" / "train" / "preview.png").unlink()
    assert main(["train", "lenet5_modern", "--data", str(t / "s"), "--epochs", "1", "--batch-size", "4",
                 "--no-progress", "--output", str(t / "first")]) == 0
    (t / "s" / "train" / "bird").mkdir()
    (t / "s" / "test" / "bird").mkdir()


def a_streamed_folder_with_an_unreadable_image(t: Path) -> None:
    write_png_folder(t / "p", per_class=4, size=28, classes=("a", "b"), mode="L")
    (t / "p" / "test" / "b" / "0.png").write_bytes(b"garbage\n")


def a_folder_named_with_a_newline(t: Path) -> None:
    """{t}/bad<newline>name: a folder whose name holds a newline (as a shell's $'bad\\nname' makes it)."""
    (t / "bad\nname").mkdir()


def a_labels_csv_and_a_link_to_it(t: Path) -> None:
    """{t}/labels.csv (a_labels_csv) and {t}/link.csv, a symbolic link to it."""
    a_labels_csv(t)
    os.symlink("labels.csv", t / "link.csv")


def an_empty_file(t: Path) -> None:
    (t / "empty.txt").touch()


def a_loop_of_links(t: Path) -> None:
    """{t}/loop1 -> loop2 -> loop1."""
    os.symlink("loop2", t / "loop1")
    os.symlink("loop1", t / "loop2")


def a_checkpoint_that_runs_a_command(t: Path) -> None:
    """{t}/evil.pt: a torch.save archive whose object, unpickled, runs os.system("touch {t}/ran") (the row's
    nothing-new check would see it)."""
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch '{t / 'ran'}'",)

    torch.save({"model": Payload()}, t / "evil.pt")


class Row(NamedTuple):
    id: str
    argv: list[str]
    words: str
    make: Callable[[Path], None] | None = None
    hidden: tuple[str, ...] = ()  # modules made unimportable for the row
    trains: bool = False  # the run started: its opening lines on stdout come before the error
    env: tuple[tuple[str, str], ...] = ()  # environment variables set for the row


UNREADABLE = "is not a readable checkpoint: not a zip archive"
MISMATCH = "its weights do not match its own model record (lenet5_modern, 5 classes): head.fc.weight is 10x84"
NO_WEIGHTS = "holds no model weights (no 'model' entry)"
BAD_IMAGE = "broken.png is not a readable image (not an image format PIL recognises)"
TORCHSCRIPT = "model.torchscript.pt is a TorchScript export"
HUGE = "400 M pixels, over PIL's limit of 179 M that guards against decompression bombs: resize it"
LENET = ["train", "lenet", "--data", "digits"]
CSV = ["train", "lenet5_modern", "--data", "{t}/labels.csv", "--batch-size", "2"]
LONG = "{t}/" + "y" * 300  # a name over the 255 bytes a file system allows

CASES: list[Row] = [
    # ----- names and numbers on the command line
    Row("unknown-model", ["train", "lenet6"], "unknown model 'lenet6'; did you mean lenet"),
    Row("unknown-data-set", ["train", "lenet", "--data", "mnist6k"], "unknown data set 'mnist6k'"),
    Row("batch-of-one-for-batchnorm1d", ["train", "lenet5_bn", "--data", "digits", "--batch-size", "1"],
        "--batch-size 1 leaves each process 1 image a step, but lenet5_bn's BatchNorm1d layers need 2 or more for "
        "their batch statistics; give --batch-size 2 or more"),
    Row("auto-augment-of-two-image-inputs", [*CSV, "--inputs", "image,image2", "--targets", "species",
                                             "--auto-augment", "rand", "--output", "{t}/run"],
        "--auto-augment rand draws its operations image by image; this labels CSV gives each item 2 images (image, "
        "image2), which it would not keep alike",
        csv_edited(lambda header, rows: ([header.append("image2")], [r.append(f"{(i + 1) % 12}.png")
                                                                      for i, r in enumerate(rows)]))),
    Row("data-set-name-in-capitals", ["train", "lenet", "--data", "MNIST5K"],
        "unknown data set 'MNIST5K'; did you mean mnist5k"),
    Row("empty-data", ["train", "lenet", "--data", ""], "--data is empty: give a data set name"),
    Row("finetune-model-name-without-pretrained", ["finetune", "resnet18", "--data", "digits"],
        "resnet18 is a model name, not a checkpoint: add --pretrained"),
    Row("resume-with-another-lr", ["train", "--resume", "{d}/run", "--lr", "0.5"],
        "--lr cannot change when a run is resumed (the run used its default; it shaped the model"),
    Row("resume-with-another-image-size", ["train", "--resume", "{d}/run", "--image-size", "32"],
        "--image-size cannot change when a run is resumed (the run used its default; it shaped the model"),
    Row("resume-a-last-pt-with-a-weight-reshaped", ["train", "--resume", "{d}/run_shape", "--epochs", "2"],
        "{d}/run_shape/last.pt was altered or damaged (its 'model' weights do not fit lenet5_modern"),
    Row("resume-a-last-pt-without-its-optimizer", ["train", "--resume", "{d}/run_noopt", "--epochs", "2"],
        "{d}/run_noopt/last.pt was altered or damaged (its 'optimizer' entry is not an optimizer's state)"),
    Row("resume-a-last-pt-of-a-negative-epoch", ["train", "--resume", "{d}/run_epoch", "--epochs", "2"],
        "{d}/run_epoch/last.pt was altered or damaged (its epoch is -5, not a whole number >= 0)"),
    Row("resume-a-config-json-edited", ["train", "--resume", "{d}/run_cfg", "--epochs", "2"],
        "{d}/run_cfg/config.json and {d}/run_cfg/last.pt describe different runs (batch_size 32 there, 64 in the "
        "checkpoint)"),
    Row("resume-a-config-json-with-a-word-for-epochs", ["train", "--resume", "{d}/run_word"],
        "{d}/run_word/config.json: epochs must be an integer, got 'abc'"),
    Row("train-into-a-run-folder", ["train", "lenet", "--data", "digits", "--output", "{d}/run"],
        "--output {d}/run already holds a run (config.json, last.pt, best.pt, metrics.csv); continue it with "
        "`convolab train --resume {d}/run`, or give another folder"),
    Row("finetune-into-a-run-folder", ["finetune", "{d}/run", "--data", "digits", "--output", "{d}/run"],
        "--output {d}/run already holds a run (config.json, last.pt, best.pt, metrics.csv)"),
    Row("resume-a-safetensors-folder", ["train", "--resume", "{t}/sf"],
        "{t}/sf is not a run folder: its config.json is not a training run's (a safetensors export's?); give the "
        "--output folder of a `convolab train` run", a_safetensors_config),
    Row("weights-with-a-run-folder", ["predict", "{d}/run", "{d}/digit.png", "--weights", "IMAGENET1K_V1"],
        "--weights IMAGENET1K_V1 names a model's published weights, but {d}/run is a file or folder: drop --weights "
        "to use it, or give a model name"),
    Row("resume-with-another-monitor", ["train", "--resume", "{d}/run", "--monitor", "test_loss"],
        "--monitor cannot change when a run is resumed (the run has 'test_acc'; best.pt and the epochs "
        "--patience counts were chosen by it): leave it out, or start a new run"),
    Row("resume-with-a-flag-turned-off", ["train", "--resume", "{d}/run", "--no-channels-last"],
        "--channels-last cannot change when a run is resumed (the run has it on; "),  # (before: "the run has True")
    Row("missing-data-folder", ["train", "lenet", "--data", "{t}/no/such/folder"], "does not exist"),
    Row("no-model", ["train"], "give a MODEL"),
    Row("unknown-flag", ["models", "--nope"], "unrecognized arguments"),
    Row("bad-model-option", ["train", "lenet", "--model-option", "depth=3"], "cannot build lenet5"),
    Row("model-option-of-the-wrong-kind", ["train", "lenet", "--model-option", "img_size=abc"],
        "lenet5's option img_size takes a whole number (default 28), got 'abc'"),
    Row("model-option-not-whole", ["train", "lenet", "--model-option", "img_size=3.5"],
        "lenet5's option img_size takes a whole number (default 28), got 3.5"),
    Row("unknown-recipe", ["train", "lenet", "--recipe", "slow"], "argument --recipe: invalid choice: 'slow'"),
    Row("unknown-tta", ["train", "lenet", "--tta", "crop"], "argument --tta: invalid choice: 'crop'"),
    Row("evaluate-unknown-tta", ["evaluate", "{d}/run", "--tta", "crop"], "argument --tta: invalid choice: 'crop'"),
    Row("frozen-backbone-with-its-own-lr", ["train", "lenet", "--freeze-backbone", "--backbone-lr-scale", "0.5"],
        "--backbone-lr-scale 0.5 scales the backbone's learning rate, but --freeze-backbone trains no backbone"),
    Row("compile-mode-without-compile", ["train", "lenet", "--compile-mode", "reduce-overhead"],
        "--compile-mode reduce-overhead is torch.compile's mode: give --compile too"),
    Row("unknown-compile-mode", ["train", "lenet", "--compile", "--compile-mode", "fast"],
        "argument --compile-mode: invalid choice: 'fast'"),
    Row("unknown-experiment", ["reproduce", "degradaton"], "no experiment named 'degradaton'"),
    Row("reproduce-no-name", ["reproduce"],
        "give an experiment NAME (see `convolab reproduce --list`) or --resume DIR"),
    Row("reproduce-output-is-a-file", ["reproduce", "batchnorm", "--quick", "--data", "digits", "--output",
                                       "{t}/taken.txt"], "--output {t}/taken.txt is a file; give a folder", a_file),
    Row("reproduce-bad-device", ["reproduce", "batchnorm", "--quick", "--data", "digits", "--device", "tpu",
                                 "--output", "{t}/x"], "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    Row("reproduce-resume-not-an-experiment", ["reproduce", "--resume", "{d}/run"],
        "is not an experiment's folder (no experiment.json); give the --output folder of a `convolab reproduce` run"),
    Row("reproduce-resume-with-options", ["reproduce", "--resume", "{t}/x", "--quick", "--seeds", "2"],
        "--resume {t}/x continues the experiment as its experiment.json records it; leave out --quick, --seeds"),
    Row("train-device-mps", ["train", "lenet", "--data", "digits", "--device", "mps"],
        "--device mps: convolab does not train on Apple GPUs (MPS) yet; use --device cpu, or auto (a CUDA GPU where "
        "there is one, else the CPU)"),
    Row("train-device-index-not-a-number", ["train", "lenet", "--data", "digits", "--device", "cuda:x"],
        "--device cuda:x: the CUDA device index must be a non-negative whole number, e.g. cuda:0, got 'x'"),
    Row("evaluate-device-index-not-a-number", ["evaluate", "{d}/run", "--device", "cuda:x"],
        "--device cuda:x: the CUDA device index must be a non-negative whole number, e.g. cuda:0, got 'x'"),
    Row("reproduce-seeds-past-the-largest-seed", ["reproduce", "batchnorm", "--quick", "--data", "digits", "--seed",
                                                  "4294967295", "--seeds", "2", "--output", "{t}/x"],
        "seeds 2 from seed 4294967295 run up to seed 4294967296, but a seed must be an integer in [0, 4294967295]"),
    Row("seed-over-2-to-the-32", LENET + ["--seed", "99999999999999999999"],
        "--seed: must be an integer in [0, 4294967295], got 99999999999999999999"),
    Row("demo-seed-negative", ["demo", "edge-kernel", "--seed", "-5"], "--seed: must be an integer in [0, 4294967295]"),
    Row("demo-into-a-run-folder", ["demo", "resnet-mnist", "--epochs", "1", "--output", "{d}/run"],
        "already holds a run (config.json, "),
    Row("demo-option-it-does-not-take", ["demo", "corr2d", "--epochs", "2"], "demo corr2d does not take --epochs"),
    Row("demo-threads-0", ["demo", "resnet-mnist", "--threads", "0"],
        "argument --threads: must be a positive integer, got 0"),
    Row("demo-threads-of-one-that-does-not-train", ["demo", "corr2d", "--threads", "2"],
        "demo corr2d does not take --threads; it takes no options (--epochs, --output and --threads are for the demos "
        "that train)"),
    Row("moved-demo-with-epochs", ["demo", "batchnorm", "--epochs", "2"],
        "demo batchnorm is now `convolab reproduce batchnorm`, which runs the experiment's own schedule: drop "
        "--epochs"),
    Row("demo-output-it-does-not-take", ["demo", "edge-kernel", "--output", "{t}/x"], "it takes --seed"),
    Row("finetune-unknown-layer", ["finetune", "{d}/run", "--data", "digits", "--until", "nope", "--output", "{t}/x"],
        "unknown layer 'nope' for lenet5_modern; choose one of: "),
    Row("finetune-missing-checkpoint", ["finetune", "{t}/missing.pt", "--data", "digits", "--output", "{t}/x"],
        "does not exist"),
    Row("summary-unknown-model", ["summary", "lenet9"], "unknown model 'lenet9'"),
    Row("evaluate-model-alias-without-pretrained", ["evaluate", "LeNet"],  # (before: "checkpoint LeNet does not exist")
        "LeNet is a model name, not a checkpoint: add --pretrained"),
    Row("compare-seeds-list-starting-negative", ["compare", "lenet5", "--seeds", "-1,2", "--output", "{t}/c"],
        "argument --seeds: each seed in seeds must be an integer in [0, 4294967295], got -1"),  # (before: "expected
    # one argument": argparse took -1,2 for an option)
    Row("summary-unknown-weights", ["summary", "resnet18", "--weights", "FOO"],
        "resnet18 has no weights named 'FOO'; torchvision publishes IMAGENET1K_V1; timm publishes a1_in1k"),
    Row("summary-input-size-two-numbers", ["summary", "lenet5", "--input-size", "1,28"], "expected C,H,W"),
    Row("summary-input-too-small", ["summary", "lenet5", "--input-size", "1,8,8"],
        "too small for lenet5 (default size 1x28x28)"),
    # (the least size a model not built for its size takes, found on the meta device)
    Row("summary-input-too-small-names-the-least", ["summary", "googlenet_tv", "--input-size", "3,8,8"],
        "input 3x8x8 is too small for googlenet_tv (default size 3x224x224; its layers need at least 15x15)"),
    Row("summary-depth-0", ["summary", "lenet5", "--depth", "0"], "positive integer"),
    Row("summary-larger-than-the-head-is-built-for", ["summary", "lenet5", "--input-size", "1,64,64"],
        "input 1x64x64 does not fit lenet5, whose layers are built for 1x28x28: build it for 64 px with img_size=64 "
        "(--model-option img_size=64)"),  # (before: torch's "a and b must have same reduction dim")
    Row("summary-model-option-twice", ["summary", "lenet5", "--in-chans", "3", "--model-option", "in_chans=1"],
        "--model-option in_chans=... sets what --in-chans sets: give it as --in-chans instead"),
    Row("draw-model-option-not-a-pair", ["draw", "lenet5", "--out", "{t}/l.svg", "--model-option", "img_size"],
        "--model-option expects KEY=VALUE, got 'img_size'"),
    Row("summary-option-the-model-lacks", ["summary", "lenet5", "--aux-logits"],
        "lenet5 has no auxiliary heads; leave out --aux-logits (googlenet, googlenet_tv and inception_v3 have them)"),
    Row("cost-bad-layer", ["cost", "--input", "192x28x28", "5x5-32"],
        "expected KxK:CHANNELS[/sS][/pP], e.g. 3x3:64/s2"),
    Row("cost-input-two-numbers", ["cost", "--input", "192x28", "5x5:32"], "expected C,H,W"),
    Row("cost-kernel-does-not-fit", ["cost", "--input", "3x4x4", "7x7:8/p0"], "does not fit"),
    # bounds declared on TrainConfig's fields, checked by the generated options, naming the value
    Row("epochs-0", ["train", "lenet", "--epochs", "0"], "--epochs: must be a positive integer"),
    Row("epochs-negative", ["train", "lenet", "--epochs", "-3"], "--epochs: must be a positive integer"),
    Row("batch-size-0", ["train", "lenet", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    Row("lr-0", ["train", "lenet", "--lr", "0"], "--lr: must be a positive number"),
    Row("lr-negative", ["train", "lenet", "--lr", "-0.1"], "--lr: must be a positive number"),
    Row("train-subset-0", ["train", "lenet", "--train-subset", "0"], "--train-subset: must be a positive integer"),
    Row("reproduce-seeds-0", ["reproduce", "batchnorm", "--seeds", "0"], "--seeds: must be a positive integer"),
    Row("compare-no-model", ["compare", "--data", "digits", "--output", "{t}/c"],
        "give the MODELs to compare (see `convolab models`) or --resume DIR"),
    Row("compare-seeds-0", ["compare", "lenet", "--seeds", "0"], "seeds"),
    Row("compare-seeds-negative", ["compare", "lenet", "--seeds", "-2", "--output", "{t}/c"], "seeds must be >= 1"),
    Row("compare-seeds-word", ["compare", "lenet", "--seeds", "two", "--output", "{t}/c"],
        "expected a number of seeds >= 1 or a comma list of seeds like 0,1,2, got 'two'"),
    Row("compare-seeds-list-with-a-word", ["compare", "lenet", "--seeds", "1,x", "--output", "{t}/c"], "got '1,x'"),
    Row("compare-seeds-empty-list", ["compare", "lenet", "--seeds", ",", "--output", "{t}/c"],
        "a comma list of seeds with an empty item: ','"),
    Row("tar-image-link-leading-outside-it", ["train", "lenet5", "--data", "{t}/linked.tar", "--output", "{t}/r"],
        "image {t}/linked.tar:two/cat/outside.png is a link that leads nowhere in the archive (outside it, to no file, "
        "or into a folder that holds it)", a_tar_with_a_link_outside_it),
    # a member named with '..', which tar -x refuses to unpack (before: read as a class '..' without a word)
    Row("tar-image-named-with-dotdot", ["train", "lenet5", "--data", "{t}/up.tar", "--output", "{t}/r"],
        "image {t}/up.tar:../x/c.png is named with a '..' component, which tar -x refuses to unpack (outside the "
        "folder); pack the archive from inside its folder", a_tar_with_a_member_named_with_dotdot),
    Row("data-neither-folder-tar-nor-csv", ["train", "lenet5", "--data", "{t}/taken.txt", "--output", "{t}/r"],
        "{t}/taken.txt is neither an image folder, a .tar/.tar.gz archive nor a labels CSV (a .csv file)", a_file),
    Row("train-batch-1-batchnorm2d-on-1x1", ["train", "googlenet_small", "--batch-size", "1", "--output", "{t}/r"],
        "--batch-size 1 leaves each process 1 image a step, but googlenet_small's BatchNorm2d on a 1 x 1 map at 28 px "
        "layers need 2 or more"),
    Row("train-grad-checkpointing-of-a-cut-model", ["train", "resnet20", "--data", "digits", "--model-option",
                                                    "until=layer2", "--grad-checkpointing", "--output", "{t}/r"],
        "resnet20 cut at 'layer2' runs its layers as one traced graph, which gradient checkpointing does not reach: "
        "train it without --grad-checkpointing, or the whole model"),
    Row("compare-seeds-empty-item", ["compare", "lenet", "--seeds", "1,,2", "--output", "{t}/c"],
        "a comma list of seeds with an empty item: '1,,2'; give them like 0,1,2"),
    Row("compare-seeds-leading-comma", ["compare", "lenet", "--seeds", ",1", "--output", "{t}/c"],
        "a comma list of seeds with an empty item: ',1'"),
    Row("compare-seed-twice", ["compare", "lenet", "--seeds", "1,2,1", "--output", "{t}/c"], "seed 1 given twice"),
    Row("compare-unknown-model", ["compare", "lenet5", "lenet_5_modern", "--data", "digits", "--output", "{t}/c"],
        "lenet_5_modern"),
    Row("compare-model-twice", ["compare", "lenet5", "lenet5", "--data", "digits", "--output", "{t}/c"],
        "given twice"),
    Row("compare-into-a-folder-whose-runs-hold-a-run", ["compare", "lenet5_modern", "--data", "digits", "--output",
                                                         "{t}"],
        "{t}/runs/lenet5_modern already holds a run (last.pt), which the comparison would overwrite: choose another "
        "--output", lambda t: (t / "runs" / "lenet5_modern").mkdir(parents=True)
        or (t / "runs" / "lenet5_modern" / "last.pt").write_bytes(b"")),
    Row("compare-into-a-run", ["compare", "lenet5_modern", "--data", "digits", "--output", "{d}/run"],
        "--output {d}/run holds a run (config.json, last.pt, best.pt, metrics.csv); the comparison's report would "
        "overwrite its curves.png: choose another --output"),
    Row("report-into-another-run", ["report", "{d}/run", "--output", "{t}/other"],
        "--output {t}/other holds a run (last.pt), whose curves.png would be overwritten; write the report to "
        "another folder", lambda t: (t / "other").mkdir() or (t / "other" / "last.pt").write_bytes(b"")),
    Row("compare-output-inside-the-data-folder", ["compare", "lenet", "--data", "{t}/two", "--output", "{t}/two"],
        "--output {t}/two lies inside the data folder {t}/two: its checkpoints and curves would be read as images "
        "of a class the next time; give --output outside it", a_two_class_folder),
    Row("summary-negative-num-classes", ["summary", "resnet20", "--num-classes", "-1"],
        "argument --num-classes: must be an integer >= 0 (0: the features, no classifier), got -1"),
    Row("aux-heads-too-small", ["train", "googlenet", "--model-option", "aux_logits=true", "--data", "digits",
                                "--image-size", "96", "--output", "{t}/run"],
        "--image-size 96 is too small for googlenet's other heads (they need at least 223 px); give --image-size "
        "223 or more, or leave out aux_logits"),
    Row("csv-column-named-like-a-model-attribute", [*CSV, "--output", "{t}/run"],
        "labels.csv names a model output, and the model has an attribute 'type' already: rename the column",
        csv_edited(lambda h, rows: h.__setitem__(2, "type"))),
    Row("csv-image-column-as-a-target", [*CSV, "--targets", "species,image2", "--output", "{t}/run"],
        "--targets names image2, a column of image files: a target is a class or a number, not an image",
        csv_edited(lambda h, rows: ([h.append("image2")],
                                    [r.append(f"{(i + 1) % 12}.png") for i, r in enumerate(rows)]))),
    Row("labels-file-named-tsv", [*LENET[:2], "--data", "{t}/labels.tsv", "--output", "{t}/run"],
        "{t}/labels.tsv: a labels CSV is read from a file ending in .csv (tab- or semicolon-separated ones too); "
        "name it labels.csv", lambda t: (t / "labels.tsv").write_text("image\tclass\na.png\tcat\n")),
    Row("csv-input-named-twice", [*CSV, "--inputs", "image,image"],
        "--inputs names 'image' twice: name each column once", a_labels_csv),
    Row("csv-target-named-twice", [*CSV, "--targets", "species,species"],
        "--targets names 'species' twice: name each column once", a_labels_csv),
    Row("csv-skip-bad-images", [*CSV, "--skip-bad-images", "--output", "{t}/run"],
        "--skip-bad-images skips the unreadable files of an image folder or tar; the labels CSV", a_labels_csv),
    Row("csv-numbers-too-large", [*CSV, "--output", "{t}/run"],
        "labels.csv: its numbers are too large for a mean and std",
        csv_edited(lambda h, rows: [r.__setitem__(3, f"{r[3]}e301") for r in rows])),
    Row("csv-not-utf8", [*CSV, "--output", "{t}/run"], "labels.csv is not UTF-8 text",
        lambda t: (a_labels_csv(t), (t / "labels.csv").write_bytes(
            (t / "labels.csv").read_bytes().replace(b",cat,", b",chat\xe9,")))),
    Row("csv-secondary-class-of-one-training-value", [*CSV, "--output", "{t}/run"],
        "labels.csv has one value on its training rows ('red'): nothing to learn",
        csv_edited(lambda h, rows: [r.__setitem__(2, "red") for r in rows])),
    Row("model-option-nan", ["train", "resnet20", "--model-option", "drop_rate=NaN"],
        "resnet20's option drop_rate must be a finite number, got nan"),
    Row("model-option-img-size-negative", ["train", "resnet20", "--model-option", "img_size=-3"],
        "img_size must be a whole number >= 1 (the input's side in pixels), got -3"),
    Row("model-option-img-size-zero", ["train", "resnet20", "--model-option", "img_size=0"],
        "img_size must be a whole number >= 1 (the input's side in pixels), got 0"),
    Row("cifar-resnet-fixes-its-stem", ["train", "resnet20", "--model-option", "stem=imagenet"],
        "resnet20 fixes stem='cifar' and stem_width=16 itself; drop stem, or build resnet18 for the ImageNet stem"),
    Row("cifar-densenet-fixes-its-stem", ["train", "densenet40_k12", "--model-option", "stem=imagenet"],
        "densenet40_k12 fixes stem='cifar' itself; drop stem, or build densenet121 for the ImageNet stem"),
    Row("multitask-no-images", ["train", "multitask", "--model-option", "image_inputs=0"],
        "multitask's image_inputs must be a whole number >= 1, got 0"),
    Row("model-option-dot-five-is-a-number", ["train", "lenet", "--model-option", "img_size=.5"],
        "lenet5's option img_size takes a whole number (default 28), got 0.5"),
    Row("train-tensorboard-missing", [*LENET, "--tensorboard", "--output", "{t}/run"],
        "--tensorboard needs the tensorboard package: pip install tensorboard", hidden=("torch.utils.tensorboard",)),
    Row("compare-tensorboard-missing", ["compare", "lenet", "--data", "digits", "--tensorboard", "--output", "{t}/c"],
        "--tensorboard needs the tensorboard package: pip install tensorboard", hidden=("torch.utils.tensorboard",)),
    Row("compare-accumulate-over-an-epoch", ["compare", "lenet", "--data", "digits", "--accumulate", "1000",
                                             "--output", "{t}/c"],
        "--accumulate is 1000 but an epoch has only 22 batches of 64 (1438 training images), too few for one "
        "optimizer step; give at most 22"),
    Row("compare-batch-over-the-data", ["compare", "lenet", "--data", "digits", "--batch-size", "5000", "--output",
                                        "{t}/c"],
        "--batch-size 5000 is larger than the 1438 training images; give at most 1438"),
    Row("compare-one-model-under-two-names", ["compare", "lenet5", "lenet", "--data", "digits", "--output", "{t}/c"],
        "model lenet5 given twice (as lenet5 and lenet); give each model once"),
    Row("compare-seeds-negative-in-a-list", ["compare", "lenet", "--seeds=-1,2", "--output", "{t}/c"],
        "argument --seeds: each seed in seeds must be an integer in [0, 4294967295], got -1"),
    Row("compare-seeds-counted-past-the-largest-seed", ["compare", "lenet", "--data", "digits", "--seed", "4294967295",
                                                        "--seeds", "2", "--output", "{t}/c"],
        "seeds 2 from seed 4294967295 run up to seed 4294967296, but a seed must be an integer in [0, 4294967295], "
        "got 4294967296; give fewer seeds or a lower --seed"),
    Row("compare-resume-with-a-model", ["compare", "lenet5", "--resume", "{t}"], "--resume takes no MODEL"),
    Row("compare-resume-not-a-comparison", ["compare", "--resume", "{t}"], "holds no compare.json"),
    # compare.json or experiment.json edited or damaged: a traceback, some after the record was rewritten
    Row("compare-resume-a-record-saved-as-utf-16", ["compare", "--resume", "{t}/c"],
        "{t}/c/compare.json: it is not readable JSON text ('utf-8' codec can't decode byte 0xff in position 0",
        a_record("compare.json", COMPARE_JSON, "utf-16")),
    Row("compare-resume-a-record-that-is-a-list", ["compare", "--resume", "{t}/c"],
        "{t}/c/compare.json: it holds a JSON list, not the object `convolab compare` writes; the file was edited or "
        "damaged: restore it from a copy, or run the comparison again into a new --output",
        a_record("compare.json", [1, 2])),
    Row("compare-resume-a-record-whose-models-hold-null", ["compare", "--resume", "{t}/c"],
        "{t}/c/compare.json: its 'models' is [\"lenet5\", null], not a non-empty list of names; the file was edited",
        a_record("compare.json", {**COMPARE_JSON, "models": ["lenet5", None]})),
    Row("compare-resume-a-record-whose-statuses-are-a-list", ["compare", "--resume", "{t}/c"],
        "{t}/c/compare.json: its 'statuses' is [1], not an object of each run's status",
        a_record("compare.json", {**COMPARE_JSON, "statuses": [1]})),
    Row("compare-resume-a-record-whose-config-is-a-list", ["compare", "--resume", "{t}/c"],
        "{t}/c/compare.json: its 'config' is [1], not the object of a run's options",
        a_record("compare.json", {**COMPARE_JSON, "config": [1]})),
    Row("reproduce-resume-a-record-whose-config-is-a-list", ["reproduce", "--resume", "{t}/c"],
        "{t}/c/experiment.json: its 'config' is [1], not the object of a run's options; the file was edited or "
        "damaged: start the experiment again in a new folder",
        a_record("experiment.json", {**EXPERIMENT_JSON, "config": [1]})),
    Row("reproduce-resume-a-record-of-0-seeds", ["reproduce", "--resume", "{t}/c"],
        "{t}/c/experiment.json: its 'seeds': seeds must be >= 1",
        a_record("experiment.json", {**EXPERIMENT_JSON, "seeds": 0})),
    Row("reproduce-resume-a-record-whose-resumed-by-is-a-number", ["reproduce", "--resume", "{t}/c"],
        "{t}/c/experiment.json: its 'resumed_by' is 5, not a list of strings",
        a_record("experiment.json", {**EXPERIMENT_JSON, "resumed_by": 5})),
    Row("reproduce-resume-an-experiment-whose-comparison-record-is-a-list", ["reproduce", "--resume", "{t}/c"],
        "{t}/c/seed-0/arm-1/compare.json: it holds a JSON list", an_experiment_with_a_comparison_record([1, 2])),
    Row("report-into-one-of-its-runs", ["report", "{d}/run", "--output", "{d}/run"], "curves.png would be overwritten"),
    Row("report-a-run-twice", ["report", "{d}/run", "{d}/run/../run", "--output", "{t}/rep"],
        "run/../run is given twice; give each run once"),
    Row("report-into-a-comparison", ["report", "{d}/run", "--output", "{t}"],
        "--output {t} holds a comparison (compare.json), whose report would be overwritten", a_comparison_record),
    Row("compare-resume-with-options", ["compare", "--resume", "{t}", "--epochs", "3", "--lr", "0.5"],
        "--resume {t} continues the comparison with the options in its compare.json; leave out --epochs, --lr"),
    Row("draw-out-is-a-folder", ["draw", "lenet5", "--out", "{t}/dir.svg"], "is a directory",
        lambda t: (t / "dir.svg").mkdir()),
    Row("draw-out-in-missing-folder", ["draw", "lenet5", "--out", "{t}/missing/dir/model.svg"], "does not exist"),
    Row("draw-out-in-sys", ["draw", "lenet5", "--out", "/sys/x.svg"], "--out /sys/x.svg "),
    Row("draw-out-in-proc", ["draw", "lenet5", "--out", "/proc/x.svg"], "--out /proc/x.svg "),
    Row("draw-huge-input", ["draw", "resnet18", "--out", "{t}/x.svg", "--input-size", "3,99999,99999"],
        "--input-size 3,99999,99999: the input at batch 1 would be 112 GiB in float32"),
    Row("draw-huge-feature-map", ["draw", "resnet18", "--out", "{t}/x.svg", "--input-size", "3,20000,20000"],
        "conv1's output 1x64x10000x10000 would be 24 GiB in float32"),
    Row("summary-pretrained-other-in-chans", ["summary", "resnet50", "--pretrained", "--in-chans", "1"],
        "--in-chans 1 does not fit --pretrained: the weights torchvision:resnet50.IMAGENET1K_V2 take 3-channel (RGB) "
        "input; leave out --in-chans, or leave out --pretrained"),
    Row("models-misspelt-name", ["models", "resnt50"], "no model matches 'resnt50'; did you mean resnet50"),
    Row("models-pattern-matches-nothing", ["models", "zzz*", "--json"], "no model matches 'zzz*'"),
    Row("models-pretrained-misspelt-name", ["models", "resnt50", "--pretrained"],
        "no model matches 'resnt50'; did you mean resnet50"),
    Row("draw-out-not-svg", ["draw", "lenet5", "--out", "{t}/model.png"], "must name an .svg file"),
    Row("export-missing-checkpoint", ["export", "{t}/missing.pt"], "does not exist"),
    # (before: the photo and the user's checkpoint were overwritten, exit 0)
    Row("export-over-a-photo", ["export", "{d}/run", "--format", "onnx", "--out", "{t}/img 017.jpg"],
        "--out {t}/img 017.jpg exists and is no export (ONNX, TorchScript or .pt2) that the export would replace: "
        "give a new file, or remove it first", make=lambda t: Image.new("RGB", (8, 8)).save(t / "img 017.jpg")),
    Row("export-over-a-checkpoint", ["export", "{d}/run", "--out", "{t}/mine.pt"],
        "--out {t}/mine.pt exists and is no export", make=lambda t: torch.save({"model": {}}, t / "mine.pt")),
    Row("export-a-check-batch-beyond-the-memory", ["export", "{d}/run", "--format", "torchscript", "--out", "{t}/m.pt",
                                                   "--batch-size", "400000000"],
        "--batch-size 400000000: the batch the export is checked with does not fit in this machine's memory"),
    Row("export-random-bytes", ["export", "{d}/junk.pt"], "not a readable checkpoint"),
    Row("export-a-model-of-numeric-inputs", ["export", "{t}/num", "--out", "{t}/num.onnx"],
        "also takes 1 numeric input(s) of a labels CSV besides its image, which an exported model could not be "
        "given", a_run_with_a_numeric_input),
    Row("predict-one-image-with-a-model-of-two", ["predict", "{t}/two.onnx", "{t}/0.png"],
        "cannot make 1-channel images into the model's 2-channel input; a model of several image inputs takes an "
        "item's images stacked", an_onnx_model_of_two_image_inputs),
    Row("predict-one-image-with-a-torchscript-model-of-two", ["predict", "{t}/two.torchscript.pt", "{t}/0.png"],
        "cannot make 1-channel images into the model's 2-channel input; a model of several image inputs takes an "
        "item's images stacked", a_torchscript_model_of_two_image_inputs),
    # (a missing folder of --out is made, as a safetensors export makes its own: a failed export removes it again)
    Row("export-into-a-new-folder-beyond-its-tolerance", ["export", "{d}/run", "--out", "{t}/no/such/m.onnx",
                                                          "--no-fold", "--tolerance", "1e-12", "--rtol", "0"],
        "nothing was written (without folding, a larger difference is float32 round-off"),
    # ----- an export never replaces what it reads, nor a file a run or a safetensors folder keeps
    Row("export-onto-the-checkpoint-it-reads", ["export", "{d}/run", "--out", "{d}/run/best.pt"],
        "--out {d}/run/best.pt is the checkpoint being read: the export would replace it; give another file"),
    Row("export-torchscript-onto-a-checkpoint-file", ["export", "{d}/crop.pt", "--format", "torchscript", "--out",
                                                      "{d}/crop.pt"],
        "--out {d}/crop.pt is the checkpoint being read"),
    Row("export-onto-the-runs-last-checkpoint", ["export", "{d}/run", "--format", "torchscript", "--out",
                                                 "{d}/run/last.pt"],
        "--out {d}/run/last.pt is the last.pt of the run in {d}/run (config.json, last.pt, best.pt, metrics.csv), "
        "which the export would replace"),
    Row("export-onto-the-runs-config", ["export", "{d}/run", "--out", "{d}/run/config.json"],
        "--out {d}/run/config.json is the config.json of the run in {d}/run"),
    Row("export-safetensors-into-the-run-folder", ["export", "{d}/run", "--format", "safetensors", "--out", "{d}/run"],
        "--out {d}/run holds a run (config.json, last.pt, best.pt, metrics.csv): the safetensors config.json would "
        "replace the run's; give another folder, e.g. {d}/run/best-safetensors"),
    Row("export-safetensors-of-a-checkpoint-into-its-run", ["export", "{d}/run/best.pt", "--format", "safetensors",
                                                           "--out", "{d}/run"], "--out {d}/run holds a run"),
    Row("export-safetensors-onto-the-folder-it-reads", ["export", "{d}/st", "--format", "safetensors", "--out",
                                                        "{d}/st"],
        "--out {d}/st is the safetensors folder being exported; give another folder"),
    Row("export-safetensors-of-a-safetensors-folder", ["export", "{d}/st", "--format", "safetensors"],
        "{d}/st is already a safetensors folder: give --out FOLDER for a checked copy of it elsewhere"),
    Row("export-onto-a-safetensors-folders-weights", ["export", "{d}/st", "--format", "torchscript", "--out",
                                                      "{d}/st/model.safetensors"],
        "--out {d}/st/model.safetensors is the model.safetensors of the safetensors export in {d}/st"),
    Row("export-safetensors-onto-another-tools-config", ["export", "{d}/run", "--format", "safetensors", "--out",
                                                         "{t}/other"],
        "--out {t}/other holds a config.json that no safetensors export wrote, which the export would replace",
        a_folder_with_another_tools_config),
    # ----- --out that cannot be written, or lies under a file
    Row("export-out-under-a-file", ["export", "{d}/run", "--out", "{t}/taken.txt/m.onnx"],
        "--out {t}/taken.txt/m.onnx lies under {t}/taken.txt, which is a file", a_file),
    Row("export-torchscript-into-a-new-folder-under-a-file", ["export", "{d}/run", "--format", "torchscript",
                                                              "--out", "{t}/taken.txt/new/m.pt"],
        "--out {t}/taken.txt/new/m.pt lies under {t}/taken.txt, which is a file", a_file),
    Row("export-into-a-new-folder-read-only", ["export", "{d}/run", "--out", "{t}/ro/new/m.onnx"],
        "--out {t}/ro/new/m.onnx is not writable", a_read_only_folder),
    Row("export-into-a-new-folder-in-sys", ["export", "{d}/run", "--format", "torchscript", "--out",
                                            "/sys/convolab-new/m.pt"],
        "--out /sys/convolab-new/m.pt "),  # root: "cannot be written (...)"; others: "is not writable"
    Row("export-safetensors-out-under-a-file", ["export", "{d}/run", "--format", "safetensors", "--out",
                                                "{t}/taken.txt/sf"],
        "--out {t}/taken.txt/sf lies under {t}/taken.txt, which is a file", a_file),
    Row("export-safetensors-out-read-only", ["export", "{d}/run", "--format", "safetensors", "--out", "{t}/ro/sf"],
        "--out {t}/ro/sf is not writable", a_read_only_folder),
    Row("export-safetensors-out-in-sys", ["export", "{d}/run", "--format", "safetensors", "--out", "/sys/sf"],
        "--out /sys/sf "),  # root: "cannot be written (Operation not permitted)"; others: "is not writable"
    # ----- options and names that do not fit the format
    Row("export-safetensors-with-onnx-options", ["export", "{d}/run", "--format", "safetensors", "--batch-size", "3",
                                                 "--no-fold"],
        "--batch-size, --no-fold shape an ONNX or TorchScript export, not --format safetensors, which writes the "
        "weights as they are"),
    Row("export-safetensors-with-a-tolerance", ["export", "{d}/run", "--format", "safetensors", "--rtol", "1e-3"],
        "--rtol shapes an ONNX or TorchScript export, not --format safetensors"),
    Row("export-torchscript-named-onnx", ["export", "{d}/run", "--format", "torchscript", "--out", "{t}/m.onnx"],
        "--out {t}/m.onnx ends in .onnx, the suffix of an ONNX file, but --format torchscript writes a TorchScript "
        "file: name it {t}/m.torchscript.pt, or give --format onnx"),
    Row("export-torchscript-with-an-onnx-exporter", ["export", "{d}/run", "--format", "torchscript", "--onnx-exporter",
                                                     "dynamo"],
        "--onnx-exporter chooses how an ONNX file is written, but --format torchscript was given: leave "
        "--onnx-exporter out, or give --format onnx"),
    Row("export-dot-pt-with-an-onnx-exporter", ["export", "{d}/run", "--onnx-exporter", "dynamo", "--out", "{t}/m.pt"],
        "--onnx-exporter chooses how an ONNX file is written, but --format torchscript follows from --out {t}/m.pt: "
        "leave --onnx-exporter out, or give --format onnx"),
    Row("export-onnx-named-pt", ["export", "{d}/run", "--format", "onnx", "--out", "{t}/m.pt"],
        "--out {t}/m.pt ends in .pt, the suffix of a TorchScript file, but --format onnx writes an ONNX file: name it "
        "{t}/m.onnx, or give --format torchscript"),
    Row("export-default-format-named-safetensors", ["export", "{d}/run", "--out", "{t}/m.safetensors"],
        "--out {t}/m.safetensors ends in .safetensors, the suffix of safetensors weights, but the default format, "
        "onnx, writes an ONNX file: name it {t}/m.onnx, or give --format safetensors"),
    Row("export-fixed-and-dynamic-batch", ["export", "{d}/run", "--batch-size", "2", "--dynamic-batch"],
        "--dynamic-batch"),
    Row("export-onto-a-fifo", ["export", "{d}/run", "--format", "torchscript", "--out", "{t}/fifo"],
        "--out {t}/fifo exists and is not a regular file (a device, a FIFO or a socket), which the export would "
        "replace", a_fifo),
    Row("export-onto-the-runs-metrics-json", ["export", "{d}/run", "--format", "torchscript", "--out",
                                              "{d}/run/metrics.json"],
        "--out {d}/run/metrics.json is the metrics.json of the run in {d}/run"),
    Row("export-onto-the-runs-curves", ["export", "{d}/run", "--format", "torchscript", "--out",
                                        "{d}/run/curves.png"],
        "--out {d}/run/curves.png is the curves.png of the run in {d}/run"),
    Row("export-a-diverged-checkpoint", ["export", "{d}/diverged.pt", "--out", "{t}/m.onnx"],
        "the model of {d}/diverged.pt outputs NaN or inf on random inputs: its weights diverged"),
    Row("export-torchscript-of-a-diverged-checkpoint", ["export", "{d}/diverged.pt", "--format", "torchscript",
                                                        "--out", "{t}/m.pt"],
        "the model of {d}/diverged.pt outputs NaN or inf on random inputs: its weights diverged"),
    Row("export-safetensors-of-a-diverged-checkpoint", ["export", "{d}/diverged.pt", "--format", "safetensors",
                                                        "--out", "{t}/sf"],
        "the model of {d}/diverged.pt outputs NaN or inf on random inputs: its weights diverged (a run whose loss "
        "became NaN?); export another checkpoint, e.g. an earlier epoch's"),
    Row("export-unfolded-beyond-its-tolerance", ["export", "{d}/run", "--out", "{t}/m.onnx", "--no-fold",
                                                 "--tolerance", "1e-12", "--rtol", "0"],
        "without folding, a larger difference is float32 round-off: try a larger --tolerance or --rtol"),
    Row("predict-onnx-whose-metadata-std-is-0", ["predict", "{d}/std_zero.onnx", "{d}/digit.png"],
        "{d}/std_zero.onnx: its metadata 'std' is [0.0], but every value must be > 0 (the inputs are divided by it); "
        "the file was edited or damaged: export the model again with `convolab export`"),
    Row("predict-onnx-whose-metadata-do-not-fit", ["predict", "{d}/three_classes.onnx", "{d}/digit.png"],
        "{d}/three_classes.onnx: its metadata do not fit its model: they list 3 classes, the model gives 10 outputs"),
    Row("export-onnx-without-onnx", ["export", "{d}/run", "--out", "{t}/m.onnx"], "pip install onnx onnxruntime",
        hidden=("onnx",)),
    Row("ema-2", ["train", "lenet", "--ema", "2"], "--ema: must be a number in (0, 1), got 2.0"),
    Row("random-erasing-2", ["train", "lenet", "--random-erasing", "2"],
        "--random-erasing: must be a number in [0, 1], got 2.0"),
    Row("label-smoothing-1.5", ["train", "lenet", "--label-smoothing", "1.5"],
        "--label-smoothing: must be a number in [0, 1), got 1.5"),
    Row("momentum-5", ["train", "lenet", "--momentum", "5"], "--momentum: must be a number in [0, 1), got 5.0"),
    Row("val-fraction-1.5", ["train", "lenet", "--val-fraction", "1.5"],
        "--val-fraction: must be a number in [0, 1), got 1.5"),
    # (data with a test split of their own: the validation images it would hold out of the training split are none)
    Row("val-fraction-holds-out-nothing", [*LENET, "--val-fraction", "0.001", "--output", "{t}/run"],
        "--val-fraction 0.001 holds out no image of the 1438 training images of digits (10 classes; each class keeps "
        "one to train on at least): give a larger fraction, or more images"),

    Row("budget-seconds-0", ["compare", "lenet", "--budget-seconds", "0"],
        "--budget-seconds: must be a positive number, got 0.0"),
    Row("seed-negative", ["train", "lenet", "--seed", "-1"],
        "argument --seed: must be an integer in [0, 4294967295], got -1"),
    Row("monitor-unknown-figure", ["train", "lenet", "--monitor", "val_acc"],
        "--monitor must be test_acc, test_loss, test_acc_COLUMN or test_mae_COLUMN, got 'val_acc'"),
    Row("monitor-a-target-the-run-lacks", ["train", "lenet", "--data", "digits", "--monitor", "test_mae_age",
                                           "--output", "{t}/run"],
        "--monitor test_mae_age is not a figure of this run; it has test_acc, test_loss"),
    Row("threads-0", ["reproduce", "degradation", "--threads", "0"], "--threads: must be a positive integer, got 0"),
    # an input size the model's layers cannot take, refused before training with the smallest that works
    Row("image-size-too-small-bn-inception", ["train", "bn_inception", "--data", "digits", "--image-size", "6"],
        "--image-size 6 is too small for bn_inception (its layers need at least 7 px); give --image-size 7 or more"),
    Row("image-size-too-small-lenet5", ["train", "lenet5", "--data", "digits", "--image-size", "3"],
        "--image-size 3 is too small for lenet5 (its layers take 28-31 px); give --image-size 28, or --model-option "
        "img_size=N to build it for N px"),  # (its flatten is built for 28 px: "28 or more" was wrong, 32 failing)
    Row("image-size-too-large-lenet5", ["train", "lenet5", "--data", "digits", "--image-size", "32"],
        "--image-size 32 does not fit lenet5 (its layers are built for 28 px, at most 31 px); give --image-size 28, or "
        "--model-option img_size=N to build it for N px"),
    Row("image-size-too-small-lenet5-modern", ["train", "lenet5_modern", "--data", "digits", "--image-size", "16"],
        "--image-size 16 is too small for lenet5_modern (its layers take 28-31 px)"),
    Row("image-size-too-small-inception-v3", ["train", "inception_v3", "--data", "digits", "--image-size", "32"],
        "--image-size 32 is too small for inception_v3 (its layers need at least 75 px)"),
    # a batch bigger than the training set would train no step (the last partial batch is dropped)
    Row("batch-larger-than-data", [*LENET, "--batch-size", "100000"],
        "--batch-size 100000 is larger than the 1438 training images; give at most 1438"),
    Row("batch-larger-than-subset", [*LENET, "--train-subset", "10", "--output", "{t}/run"],
        "--batch-size 64 is larger than the 10 training images; give at most 10"),
    # a subset of fewer images than classes (before: the first classes by name, the test scoring classes never
    # trained on)
    Row("train-subset-under-the-classes", [*LENET, "--train-subset", "5", "--output", "{t}/run"],
        "--train-subset 5 is fewer than the 10 classes of the training images: a subset takes every class alike, at "
        "least one image each; give 10 or more"),
    Row("test-subset-under-the-classes", [*LENET, "--test-subset", "9", "--output", "{t}/run"],
        "--test-subset 9 is fewer than the 10 classes of the test images"),

    # ----- a labels CSV of several targets (issue 15): what it names must be there and fit
    Row("csv-missing", ["train", "lenet5_modern", "--data", "{t}/nowhere.csv"],
        "labels CSV {t}/nowhere.csv does not exist"),
    Row("csv-image-missing", [*CSV, "--output", "{t}/run"],
        "labels.csv line 4, column 'image': image 2.png does not exist",
        lambda t: (a_labels_csv(t), (t / "2.png").unlink())),
    Row("csv-no-image-column", [*CSV, "--output", "{t}/run"],
        "has no image column (named image, path, file, or of image files", csv_edited(_no_image_column)),
    Row("csv-split-column-without-test-rows", [*CSV, "--output", "{t}/run"],
        "labels.csv yields 12 training and 0 test rows; both splits need rows (mark some rows test in its "
        "column 'split')", csv_edited(lambda h, rows: (h.append("split"), [r.append("train") for r in rows]))),
    Row("csv-val-fraction-0", [*CSV, "--val-fraction", "0", "--output", "{t}/run"],
        "labels.csv yields 12 training and 0 test rows; both splits need rows (add a split column of train/test, "
        "or raise --val-fraction from 0)", a_labels_csv),
    Row("csv-split-column-without-training-rows", [*CSV, "--output", "{t}/run"],
        "labels.csv yields 0 training and 12 test rows; both splits need rows (mark some rows train in its "
        "column 'split')", csv_edited(lambda h, rows: (h.append("split"), [r.append("test") for r in rows]))),
    Row("csv-test-only-class", [*CSV, "--output", "{t}/run"],
        "labels.csv: column 'species' has classes only in test rows: 'bird' (a model is never taught them)",
        csv_edited(_a_test_only_class)),
    Row("csv-nan-cell", [*CSV, "--output", "{t}/run"],
        "labels.csv line 3, column 'age': 'nan' is not a finite number; every row needs one",
        csv_edited(lambda h, rows: rows[1].__setitem__(3, "nan"))),
    Row("csv-nan-and-inf-cells", [*CSV, "--output", "{t}/run"],
        "labels.csv line 3, column 'age': 'NaN' is not a finite number; every row needs one",
        csv_edited(lambda h, rows: [rows[i].__setitem__(3, v) for i, v in ((1, "NaN"), (4, "inf"), (7, "-inf"))])),
    Row("csv-image-listed-twice", [*CSV, "--output", "{t}/run"],
        "labels.csv lines 4 and 9 both list image 2.png, with different species (cat, dog)",
        csv_edited(_same_image_twice)),
    Row("csv-row-listed-twice", [*CSV, "--output", "{t}/run"],
        "labels.csv lines 4 and 9 list image 2.png twice (the same row)",
        csv_edited(lambda h, rows: rows.__setitem__(7, list(rows[2])))),
    Row("csv-image-pair-listed-twice", [*CSV, "--inputs", "image,image2", "--output", "{t}/run"],
        "labels.csv lines 4 and 9 both list the images 2.png, 3.png, with different species (cat, dog)",
        csv_edited(_same_pair_twice)),
    Row("csv-unknown-input", [*CSV, "--inputs", "picture"], "--inputs names 'picture', which is not a column of",
        a_labels_csv),
    Row("csv-unknown-target", [*CSV, "--targets", "species,weight"],
        "--targets names 'weight', which is not a column of", a_labels_csv),
    Row("csv-unknown-loss", [*CSV, "--loss", "species=1,weight=0.5", "--output", "{t}/run"],
        "--loss names weight, which the model does not output (its outputs: species, colour, age)", a_labels_csv),
    Row("csv-not-a-number", [*CSV, "--output", "{t}/run"], "labels.csv line 3, column 'age': 'old' is not a number",
        csv_edited(lambda h, rows: rows[1].__setitem__(3, "old"))),
    Row("csv-empty-cell", [*CSV, "--output", "{t}/run"],
        "labels.csv line 5, column 'colour': empty; every row needs a value",
        csv_edited(lambda h, rows: rows[3].__setitem__(2, ""))),
    Row("csv-no-class-column", [*CSV, "--targets", "age", "--output", "{t}/run"], "no class column among the targets",
        a_labels_csv),
    Row("csv-mixup-numeric-target", [*CSV, "--mixup", "0.2", "--output", "{t}/run"],
        "--mixup and --cutmix mix class labels", a_labels_csv),
    Row("csv-multitask-model", ["train", "multitask", "--data", "{t}/labels.csv", "--batch-size", "2",
                                "--output", "{t}/run"],
        "a labels CSV builds its heads on the MODEL given", a_labels_csv),
    Row("finetune-two-image-run-on-one-image-an-item",
        ["finetune", "{t}/two3", "--data", "{t}/labels.csv", "--inputs", "image", "--batch-size", "4",
         "--output", "{t}/ft"],
        "two3 was trained on items of 2 images (--inputs image,image2), but --data labels.csv gives items of 1 image: "
        "name the labels CSV's columns of them with --inputs", a_run_of_two_images_and_three_targets),
    Row("finetune-loss-on-a-head-left-out-of-targets",
        ["finetune", "{t}/two3", "--data", "{t}/labels.csv", "--targets", "species,colour", "--loss", "age=1",
         "--batch-size", "4", "--output", "{t}/ft"],
        "--loss weighs age, but the labels CSV's targets here are species, colour: add age to --targets",
        a_run_of_two_images_and_three_targets),
    Row("finetune-two-head-model-on-a-labels-csv-without-its-column",
        ["finetune", "{t}/th", "--data", "{t}/labels.csv", "--targets", "species", "--batch-size", "2",
         "--output", "{t}/ft"],
        "the model's head parity has no target among the labels CSV's (species): a head learns the column of its "
        "name; add it to --targets", a_two_head_run_and_a_labels_csv),
    Row("targets-without-csv", ["train", "lenet", "--data", "digits", "--targets", "x"],
        "--targets and --inputs name the columns of a labels CSV"),

    # ----- checkpoints that are not what they claim
    Row("evaluate-missing-run", ["evaluate", "{t}/missing-run/best.pt"], "does not exist"),
    Row("evaluate-random-bytes", ["evaluate", "{d}/junk.pt"], UNREADABLE),
    Row("predict-random-bytes", ["predict", "{d}/junk.pt", "{d}/digit.png"], UNREADABLE),
    # --skip-bad-images with nothing left to score: one line with the reasons (no warning line before it)
    Row("predict-skipping-every-file", ["predict", "{d}/run", "{d}/junk.pt", "--skip-bad-images", "--json"],
        "no file given read as an image (1 skipped): "),
    Row("report-a-comparison-that-ran-nothing", ["report", "{t}", "--output", "{t}/rep"],
        "{t} is a comparison none of whose runs has begun (no runs/MODEL/config.json); report it once one has, or "
        "continue it with `convolab compare --resume {t}`", a_comparison_record),
    Row("evaluate-truncated-checkpoint", ["evaluate", "{d}/truncated.pt"], "not a readable checkpoint"),
    Row("evaluate-weights-of-another-model", ["evaluate", "{d}/other_classes.pt"], MISMATCH),
    Row("predict-weights-of-another-model", ["predict", "{d}/other_classes.pt", "{d}/digit.png"], MISMATCH),
    Row("export-weights-of-another-model", ["export", "{d}/other_classes.pt"], MISMATCH),
    Row("evaluate-no-weights", ["evaluate", "{d}/no_weights.pt"], NO_WEIGHTS),
    Row("predict-no-weights", ["predict", "{d}/no_weights.pt", "{d}/digit.png"], NO_WEIGHTS),
    Row("export-no-weights", ["export", "{d}/no_weights.pt"], NO_WEIGHTS),
    Row("predict-torchscript-whose-metadata-do-not-fit", ["predict", "{d}/three_classes.torchscript.pt",
                                                           "{d}/digit.png"],
        "{d}/three_classes.torchscript.pt: its metadata do not fit its model: they list 3 classes, the model gives "
        "outputs of shape (1, 10)"),
    Row("export-an-onnx-file", ["export", "{d}/model.onnx"],
        "{d}/model.onnx is an ONNX export (`convolab export`), not a checkpoint"),
    Row("export-a-torchscript-file", ["export", "{d}/model.torchscript.pt"], TORCHSCRIPT),
    # (an export is evaluated on data it does not record, on the CPU, and TorchScript only under its own name)
    Row("evaluate-onnx-file-without-data", ["evaluate", "{d}/model.onnx"],
        "{d}/model.onnx is an exported file, which does not record the data its run trained on: give --data"),
    Row("evaluate-torchscript-file-without-data", ["evaluate", "{d}/model.torchscript.pt"],
        "{d}/model.torchscript.pt is an exported file, which does not record the data its run trained on"),
    Row("evaluate-torchscript-under-another-name", ["evaluate", "{d}/colleague.pt", "--data", "digits"],
        "{d}/colleague.pt is a TorchScript program, not a checkpoint, and running one runs its code"),
    Row("evaluate-an-export-on-a-gpu", ["evaluate", "{d}/model.torchscript.pt", "--data", "digits", "--device",
                                        "cuda"],
        "--device cuda: an exported file is evaluated on the CPU (as `predict` runs it); leave --device out"),
    Row("evaluate-a-missing-onnx-file", ["evaluate", "{t}/nope.onnx", "--data", "digits"],
        "ONNX model {t}/nope.onnx does not exist"),
    Row("export-a-pt2-program", ["export", "{t}/model.pt2"],
        "{t}/model.pt2 is a torch.export program (`convolab export --format pt2`), not a checkpoint", programs),
    Row("evaluate-a-corrupt-pt2-file", ["evaluate", "{t}/bad.pt2", "--data", "digits"],
        "{t}/bad.pt2 is not a readable torch.export program (not a zip archive): not the archive `convolab export "
        "--format pt2` writes", programs),
    Row("predict-a-truncated-pt2-file", ["predict", "{t}/cut.pt2", "{d}/digit.png"],
        "{t}/cut.pt2 is not a readable torch.export program", programs),
    Row("predict-a-missing-pt2-file", ["predict", "{t}/none.pt2", "{d}/digit.png"],
        "torch.export program {t}/none.pt2 does not exist"),
    Row("export-pt2-named-onnx", ["export", "{d}/run", "--format", "pt2", "--out", "{t}/m.onnx"],
        "--out {t}/m.onnx ends in .onnx, the suffix of an ONNX file, but --format pt2 writes a torch.export program: "
        "name it {t}/m.pt2, or give --format onnx"),
    Row("export-onnx-named-pt2", ["export", "{d}/run", "--format", "onnx", "--out", "{t}/m.pt2"],
        "--out {t}/m.pt2 ends in .pt2, the suffix of a torch.export program, but --format onnx writes an ONNX file: "
        "name it {t}/m.onnx, or give --format pt2"),
    Row("evaluate-a-corrupt-onnx-file", ["evaluate", "{t}/bad.onnx", "--data", "digits"],
        "{t}/bad.onnx is not a readable ONNX model", corrupt_exports),
    Row("evaluate-a-corrupt-torchscript-file", ["evaluate", "{t}/bad.torchscript.pt", "--data", "digits"],
        "{t}/bad.torchscript.pt is not a readable TorchScript file: not the zip archive `convolab export --format "
        "torchscript` writes (truncated, corrupt or another kind of file); export the run again", corrupt_exports),
    Row("predict-a-corrupt-torchscript-file", ["predict", "{t}/bad.torchscript.pt", "{d}/digit.png"],
        "{t}/bad.torchscript.pt is not a readable TorchScript file", corrupt_exports),
    Row("evaluate-onnx-without-metadata", ["evaluate", "{t}/plain.onnx", "--data", "digits"],
        "{t}/plain.onnx's metadata lacks or garbles 'classes'", an_onnx_model_of_anothers),
    Row("evaluate-onnx-on-an-unknown-data-set", ["evaluate", "{d}/model.onnx", "--data", "nosuchset"],
        "unknown data set 'nosuchset'"),
    Row("evaluate-onnx-without-onnxruntime", ["evaluate", "{d}/model.onnx", "--data", "digits"],
        "running an .onnx file needs onnxruntime, which is not installed: pip install onnxruntime",
        hidden=("onnxruntime",)),
    # (loading TorchScript runs its code: a colleague's "best.pt" wrote into a file of the user's)
    Row("predict-torchscript-under-another-name", ["predict", "{d}/colleague.pt", "{d}/digit.png"],
        "{d}/colleague.pt is a TorchScript program, not a checkpoint, and running one runs its code; convolab runs "
        "one only under a name ending .torchscript.pt, as `convolab export` names it: rename it so if you trust "
        "where it came from"),
    Row("predict-onnx-without-onnxruntime", ["predict", "{d}/model.onnx", "{d}/digit.png"],
        "running an .onnx file needs onnxruntime, which is not installed: pip install onnxruntime",
        hidden=("onnxruntime",)),

    # ----- a record's values edited by hand (a safetensors config.json, a checkpoint's record)
    Row("predict-safetensors-mean-not-a-list", ["predict", "{d}/st_mean", "{d}/digit.png"],
        "{d}/st_mean/config.json: its 'mean' is 0.3, not a list of 1 finite number, one per input channel "
        "('in_chans'); the file was edited or damaged"),
    Row("evaluate-safetensors-std-0", ["evaluate", "{d}/st_std", "--output", "{t}/ev"],
        "{d}/st_std/config.json: its 'std' is [0], but every value must be > 0 (the inputs are divided by it)"),
    Row("predict-safetensors-image-size-a-number", ["predict", "{d}/st_size", "{d}/digit.png"],
        "{d}/st_size/config.json: its 'image_size' is 28, not [height, width] in pixels (two whole numbers >= 1)"),
    Row("predict-safetensors-fewer-classes-than-outputs", ["predict", "{d}/st_classes", "{d}/digit.png", "--topk",
                                                          "10"],
        "{d}/st_classes/config.json: its 'classes' lists 9 names for the model's 10 outputs ('num_classes')"),
    Row("predict-checkpoint-fewer-classes-than-outputs", ["predict", "{d}/nine_classes.pt", "{d}/digit.png"],
        "{d}/nine_classes.pt: its 'classes' lists 9 names for the model's 10 outputs ('num_classes'); the file was "
        "edited or damaged"),
    Row("features-checkpoint-fewer-classes-than-outputs", ["features", "{d}/nine_classes.pt", "--out", "{t}/f.npz"],
        "{d}/nine_classes.pt: its 'classes' lists 9 names for the model's 10 outputs"),
    Row("evaluate-checkpoint-image-size-the-model-cannot-take", ["evaluate", "{d}/wrong_size.pt", "--output",
                                                                "{t}/ev"],
        "checkpoint {d}/wrong_size.pt: its 'image_size' [32, 32] does not fit lenet5_modern, whose layers are built "
        "for [28, 28]"),
    # ----- outputs the system refuses though os.access allows them (root): the write is tried before any work
    Row("evaluate-output-in-sys", ["evaluate", "{d}/run", "--output", "/sys/ev"], "--output /sys/ev "),
    Row("evaluate-output-an-existing-sys-folder", ["evaluate", "{d}/run", "--output", "/sys/kernel"],
        "--output /sys/kernel "),
    Row("features-out-in-sys", ["features", "{d}/run", "--out", "/sys/f.npz"], "--out /sys/f.npz "),
    Row("features-out-in-proc", ["features", "{d}/run", "--out", "/proc/f.npz"], "--out /proc/f.npz "),
    Row("predict-truncated-safetensors", ["predict", "{d}/st_truncated", "{d}/digit.png"],
        "st_truncated/model.safetensors is not a readable safetensors file"),
    Row("predict-safetensors-config-saved-as-utf-16", ["predict", "{d}/st_utf16", "{d}/digit.png"],
        "{d}/st_utf16/config.json is not valid UTF-8 JSON ('utf-8' codec can't decode byte 0xff in position 0"),

    # ----- pretrained weights that are not there (offline: the caches only)
    Row("predict-model-without-published-weights", ["predict", "lenet5", "--pretrained", "{d}/digit.png"],
        "lenet5 has no published weights; the models with weights from torchvision or timm are: densenet121"),
    Row("predict-unknown-weights-name", ["predict", "resnet18", "--weights", "IMAGENET1K_V9", "{d}/digit.png"],
        "resnet18 has no weights named 'IMAGENET1K_V9'; torchvision publishes IMAGENET1K_V1"),
    Row("predict-weights-of-another-source", ["predict", "googlenet_tv", "--weights", "timm", "{d}/digit.png"],
        "convolab loads googlenet_tv's weights from torchvision only, not from timm; give --weights torchvision or "
        "--pretrained"),
    Row("predict-whole-pickled-model", ["predict", "{t}/full.pth", "{d}/digit.png"],
        "it holds a pickled torch.nn.modules.container.Sequential object, which convolab does not unpickle",
        lambda t: torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), t / "full.pth")),
    # torch words a global of a module it blocks (os.system) without "WeightsUnpickler error:" (before: "a damaged
    # archive (Weights only load failed)")
    Row("predict-checkpoint-that-runs-a-command", ["predict", "{t}/evil.pt", "{d}/digit.png"],
        f"it holds a pickled {os.system.__module__}.system object, which convolab does not unpickle",
        a_checkpoint_that_runs_a_command),
    Row("predict-pretrained-unknown-model", ["predict", "resnet19", "--pretrained", "{d}/digit.png"],
        "unknown model 'resnet19'"),
    Row("predict-pretrained-not-cached-offline", ["predict", "resnet18", "--pretrained", "{d}/digit.png"],
        "the torchvision:resnet18.IMAGENET1K_V1 weights are neither cached nor downloadable (offline",
        env=(("TORCH_HOME", "{t}/torch"), ("CONVOLAB_OFFLINE", "1"))),
    Row("evaluate-pretrained-timm-not-cached-offline", ["evaluate", "inception_v4", "--pretrained", "--data", "digits"],
        "the timm:inception_v4.tf_in1k weights are neither cached nor downloadable",
        env=(("HF_HOME", "{t}/hf"), ("CONVOLAB_OFFLINE", "1"))),
    Row("predict-pretrained-truncated-cache", ["predict", "resnet18", "--pretrained", "{d}/digit.png"],
        "resnet18-f37072fd.pth in the weights cache is not a complete torchvision:resnet18.IMAGENET1K_V1 weights file",
        a_truncated_resnet18_weights_file, env=(("TORCH_HOME", "{t}/torch"), ("CONVOLAB_OFFLINE", "1"))),
    Row("predict-pretrained-timm-without-timm", ["predict", "inception_v4", "--pretrained", "{d}/digit.png"],
        "weights from timm need the timm package, which is not installed: pip install timm", hidden=("timm",),
        env=(("HF_HOME", "{t}/hf"), ("CONVOLAB_OFFLINE", "1"))),
    # --pretrained / --weights on the verbs that build MODEL (train, compare, lr-find, draw)
    Row("train-pretrained-model-without-weights", ["train", "lenet5", "--pretrained", "--output", "{t}/run"],
        "lenet5 has no published weights; the models with weights from torchvision or timm are: densenet121"),
    Row("compare-pretrained-model-without-weights", ["compare", "resnet18", "lenet5", "--pretrained", "--data",
                                                     "digits", "--output", "{t}/cmp"],
        "lenet5 has no published weights to start from (`convolab models` lists the models that have some in its "
        "\"weights from\" column): leave lenet5 out, or leave out --pretrained"),
    Row("train-weights-of-another-model", ["train", "resnet18", "--weights", "IMAGENET1K_V2", "--data", "digits",
                                           "--output", "{t}/run"],
        "resnet18 has no weights named 'IMAGENET1K_V2'; torchvision publishes IMAGENET1K_V1"),
    Row("draw-weights-of-another-model", ["draw", "resnet18", "--weights", "IMAGENET1K_V2", "--out", "{t}/m.svg"],
        "resnet18 has no weights named 'IMAGENET1K_V2'; torchvision publishes IMAGENET1K_V1"),
    Row("train-pretrained-resume", ["train", "--resume", "{d}/run", "--pretrained"],
        "--resume {d}/run continues as it was started, from the weights it has trained (last.pt); leave out "
        "--pretrained"),
    Row("compare-weights-resume", ["compare", "--resume", "{t}", "--weights", "timm"],
        "--resume {t} continues as it was started, from the weights it has trained (last.pt); leave out --weights "
        "timm"),
    Row("train-pretrained-init-from", ["train", "resnet18", "--pretrained", "--init-from", "{d}/run/best.pt",
                                       "--output", "{t}/run"],
        "--init-from {d}/run/best.pt and --pretrained both name the weights to start from: give one"),
    Row("lr-find-pretrained-init-from", ["lr-find", "resnet18", "--pretrained", "--init-from", "{d}/run/best.pt",
                                         "--output", "{t}/lr"],
        "--init-from {d}/run/best.pt and --pretrained both name the weights to start from: give one"),
    Row("train-pretrained-model-option", ["train", "resnet18", "--pretrained", "--model-option", "drop_rate=0.1",
                                          "--output", "{t}/run"],
        "--pretrained builds the model as its weights were trained, with their options; leave out --model-option"),
    Row("train-pretrained-not-cached-offline", ["train", "resnet18", "--pretrained", "--data", "digits", "--output",
                                                "{t}/run"],
        "the torchvision:resnet18.IMAGENET1K_V1 weights are neither cached nor downloadable (offline",
        env=(("TORCH_HOME", "{t}/torch"), ("CONVOLAB_OFFLINE", "1"))),
    Row("compare-pretrained-not-cached-offline", ["compare", "resnet18", "resnet34", "--pretrained", "--data",
                                                  "digits", "--output", "{t}/cmp"],
        "the torchvision:resnet18.IMAGENET1K_V1 weights are neither cached nor downloadable (offline",
        env=(("TORCH_HOME", "{t}/torch"), ("CONVOLAB_OFFLINE", "1"))),
    Row("lr-find-pretrained-not-cached-offline", ["lr-find", "resnet18", "--pretrained", "--data", "digits",
                                                  "--output", "{t}/lr"],
        "the torchvision:resnet18.IMAGENET1K_V1 weights are neither cached nor downloadable (offline",
        env=(("TORCH_HOME", "{t}/torch"), ("CONVOLAB_OFFLINE", "1"))),

    # ----- images that cannot be read
    Row("predict-missing-image", ["predict", "{d}/run", "{t}/none.png"], "does not exist"),
    Row("predict-unreadable-image", ["predict", "{d}/run", "{d}/broken.png"], BAD_IMAGE),
    # a bad file after good ones: named before any image is scored (before: after scoring all the others, and their
    # lines were lost with it)
    Row("predict-unreadable-image-last", ["predict", "{d}/run", "{d}/digit.png", "{d}/digit.png", "{d}/broken.png"],
        BAD_IMAGE),
    Row("predict-onnx-unreadable-image-last", ["predict", "{d}/model.onnx", "{d}/digit.png", "{d}/broken.png"],
        BAD_IMAGE),
    Row("predict-unreadable-image-centre-crop", ["predict", "{d}/crop.pt", "{d}/broken.png"], BAD_IMAGE),
    Row("predict-onnx-unreadable-image", ["predict", "{d}/model.onnx", "{d}/broken.png"], BAD_IMAGE),
    Row("predict-image-over-pil-limit", ["predict", "{d}/run", "{d}/huge.png"],
        f"huge.png is too large to decode: {HUGE}"),
    Row("predict-image-over-pil-limit-centre-crop", ["predict", "{d}/crop.pt", "{d}/huge.png"],
        f"huge.png is too large to decode: {HUGE}"),
    Row("predict-dangling-symlink", ["predict", "{d}/run", "{d}/gone.png"],
        "gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist; fix the link"),
    # symbolic links in a data folder that lead nowhere: named before anything is decoded
    # a malformed environment variable: one line naming it (before: a traceback at `import convolab`)
    Row("train-cache-limit-not-a-size", ["train", "lenet5_modern", "--data", "{t}/s", "--output", "{t}/run"],
        "CONVOLAB_CACHE_LIMIT_GB='4GB' is not a size in GiB; set it to a number such as 4 (or unset it: 4)",
        lambda t: write_png_folder(t / "s", per_class=2, size=8, classes=("a", "b"), mode="L"),
        env=(("CONVOLAB_CACHE_LIMIT_GB", "4GB"),)),
    Row("train-cache-limit-nan", ["train", "lenet5_modern", "--data", "{t}/s", "--output", "{t}/run"],
        "CONVOLAB_CACHE_LIMIT_GB='nan' is not a size in GiB",
        lambda t: write_png_folder(t / "s", per_class=2, size=8, classes=("a", "b"), mode="L"),
        env=(("CONVOLAB_CACHE_LIMIT_GB", "nan"),)),
    # (read only when a cache was made: a script's typo passed on a cache hit and on the built-in data sets)
    Row("train-cache-limit-not-a-size-on-built-in-data", ["train", "lenet5_modern", "--data", "digits", "--output",
                                                          "{t}/run"],
        "CONVOLAB_CACHE_LIMIT_GB='abc' is not a size in GiB", env=(("CONVOLAB_CACHE_LIMIT_GB", "abc"),)),
    # CUDA graphs asked of a resumed run that sums gradients over batches: the line named --accumulate 1, which a
    # resumed run refuses
    Row("resume-cuda-graphs-over-accumulate", ["train", "--resume", "{t}/run", "--epochs", "2", "--compile",
                                               "--compile-mode", "reduce-overhead"],
        "--compile-mode reduce-overhead's CUDA graphs would overwrite the gradients the run's --accumulate 2 sums "
        "over several batches; leave it out or give --compile-mode default", a_run_of_two_batches_a_step),
    # a $TMPDIR too long for the sockets streaming workers pass batches through (before: the workers died on an
    # OSError each, with their tracebacks, and the epoch waited for them for ever)
    Row("train-stream-tmpdir-too-long", ["train", "lenet5_modern", "--data", "{t}/s", "--loader", "stream",
                                         "--workers", "2", "--output", "{t}/run"],
        "is too long for the sockets the 2 data-loading workers pass their images through (at most 75); set TMPDIR "
        "to a shorter folder (or give --workers 0, where the command takes it",
        lambda t: (write_png_folder(t / "s", per_class=2, size=8, classes=("a", "b"), mode="L"),
                   (t / ("x" * 80)).mkdir()),
        env=(("TMPDIR", "{t}/" + "x" * 80),)),
    Row("train-dangling-symlink", ["train", "lenet5_modern", "--data", "{d}/dangling", "--output", "{t}/run"],
        "dangling/a/gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist; fix or remove "
        "the link, or pass --skip-bad-images"),
    Row("train-dangling-symlink-stream", ["train", "lenet5_modern", "--data", "{d}/dangling", "--loader", "stream",
                                          "--output", "{t}/run"],
        "dangling/a/gone.png is a symbolic link to '/nonexistent/gone.png', which does not exist"),
    Row("train-symlink-loop", ["train", "lenet5_modern", "--data", "{d}/loop", "--output", "{t}/run"],
        "loop/a/loop.png is a symbolic link that leads back to itself (a loop); fix or remove the link"),
    Row("train-symlink-loop-stream", ["train", "lenet5_modern", "--data", "{d}/loop", "--loader", "stream",
                                      "--output", "{t}/run"],
        "loop/a/loop.png is a symbolic link that leads back to itself (a loop)"),
    Row("train-folder-symlink-loop", ["train", "lenet5_modern", "--data", "{d}/folder_loop", "--output", "{t}/run"],
        "folder_loop/a/up is a symbolic link to a folder that holds it (a loop); fix or remove the link"),
    # an image that is a device or a FIFO, named before anything is read from it (before: /dev/zero read until a
    # MemoryError's traceback, --skip-bad-images too; a FIFO waited for ever)
    Row("train-symlink-to-dev-zero", ["train", "lenet5_modern", "--data", "{t}/z", "--output", "{t}/run"],
        "z/a/evil.png is a symbolic link to '/dev/zero', a character device, not an image file; fix or remove the "
        "link, or pass --skip-bad-images", a_folder_with_a_link_to_dev_zero),
    Row("train-fifo-in-a-folder", ["train", "lenet5_modern", "--data", "{t}/z", "--loader", "stream",
                                   "--output", "{t}/run"],
        "z/a/pipe.png is a FIFO (named pipe), not an image file; remove it, or pass --skip-bad-images",
        a_folder_with_a_fifo),
    Row("csv-row-of-dev-zero", [*CSV, "--output", "{t}/run"],
        "labels.csv line 14, column 'image': image /dev/zero is a character device, not an image file; give the "
        "path of an image file, or drop the row", csv_edited(lambda h, rows: rows.append(["/dev/zero", *rows[0][1:]]))),
    Row("csv-a-fifo", ["train", "lenet5_modern", "--data", "{t}/fifo.csv", "--output", "{t}/run"],
        "labels CSV {t}/fifo.csv is a FIFO (named pipe), not a file of text", a_fifo_named_csv),
    Row("predict-dev-zero", ["predict", "{d}/run", "/dev/zero"],
        "image /dev/zero is a character device, not an image file; give a PNG, JPEG or other image file"),
    Row("predict-dev-zero-centre-crop", ["predict", "{d}/crop.pt", "/dev/zero"],
        "image /dev/zero is a character device, not an image file"),
    Row("predict-fifo", ["predict", "{d}/run", "{t}/fifo"], "image {t}/fifo is a FIFO (named pipe), not an image file",
        a_fifo),

    # ----- sizes no device could hold: arithmetic only, refused before anything is allocated
    Row("cost-huge-kernel", ["cost", "--input", "3x224x224", "99999x99999:1"],
        "layer 99999x99999:1's weight tensor 1x3x99999x99999 would be 112 GiB in float32"),
    Row("cost-huge-input", ["cost", "--input", "3x99999x99999", "3x3:64"],
        "the input 3x99999x99999 at batch 1 would be 112 GiB in float32"),
    Row("summary-huge-input", ["summary", "resnet18", "--input-size", "3,99999,99999"],
        "--input-size 3,99999,99999: the input at batch 1 would be 112 GiB in float32"),
    Row("summary-huge-feature-map", ["summary", "resnet18", "--input-size", "3,20000,20000"],
        "conv1's output 1x64x10000x10000 would be 24 GiB in float32"),

    Row("memory-would-not-fit", ["train", "resnet20", "--image-size", "512", "--batch-size", "4000",
                                 "--output", "{t}/run"],
        "resnet20 at 512 px, batch 4000, would need about 2078.1 GiB of memory to train (10.31 G MACs an image), "
        "more than the "),

    # ----- --output / --out under a file, a file as a folder, a missing folder for a file, a read-only folder
    Row("train-output-is-a-file", ["train", "lenet", "--output", "{t}/taken.txt"], "is a file", a_file),
    Row("evaluate-output-under-a-file", ["evaluate", "{d}/run", "--output", "{t}/taken.txt/ev"],
        "--output {t}/taken.txt/ev lies under {t}/taken.txt, which is a file", a_file),
    Row("evaluate-output-is-a-file", ["evaluate", "{d}/run", "--output", "{t}/taken.txt"],
        "--output {t}/taken.txt is a file; give a folder", a_file),
    Row("export-safetensors-out-is-a-file", ["export", "{d}/run", "--format", "safetensors", "--out", "{t}/taken.txt"],
        "--out {t}/taken.txt is a file; give a folder for model.safetensors and config.json", a_file),
    Row("features-out-under-a-file", ["features", "{d}/run", "--out", "{t}/taken.txt/f.npz"],
        "--out {t}/taken.txt/f.npz lies under {t}/taken.txt, which is a file", a_file),
    Row("features-out-in-missing-folder", ["features", "{d}/run", "--out", "{t}/missing/f.npz"],
        "the folder of --out {t}/missing/f.npz does not exist"),
    Row("report-output-under-a-file", ["report", "{d}/run", "--output", "{t}/taken.txt/rep"],
        "--output {t}/taken.txt/rep lies under {t}/taken.txt, which is a file", a_file),
    Row("draw-out-under-a-file", ["draw", "lenet5", "--out", "{t}/taken.txt/m.svg"],
        "--out {t}/taken.txt/m.svg lies under {t}/taken.txt, which is a file", a_file),
    Row("compare-output-under-a-file", ["compare", "lenet", "--data", "digits", "--output", "{t}/taken.txt/c"],
        "--output {t}/taken.txt/c lies under {t}/taken.txt", a_file),
    Row("train-output-holds-a-users-curves", [*LENET, "--output", "{t}/proj"],
        "--output {t}/proj holds no run but holds steps.csv, curves.png, which a run there would replace: move them "
        "away, or give another folder", lambda t: [(t / "proj").mkdir(), (t / "proj" / "curves.png").write_text("mine"),
                                                   (t / "proj" / "steps.csv").write_text("mine")]),
    Row("train-output-under-a-file", [*LENET, "--output", "{t}/taken.txt/t"],
        "--output {t}/taken.txt/t lies under {t}/taken.txt", a_file),
    Row("evaluate-output-read-only", ["evaluate", "{d}/run", "--output", "{t}/ro/ev"],
        "--output {t}/ro/ev is not writable", a_read_only_folder),
    Row("features-out-read-only", ["features", "{d}/run", "--out", "{t}/ro/f.npz"],
        "--out {t}/ro/f.npz is not writable", a_read_only_folder),
    Row("report-output-read-only", ["report", "{d}/run", "--output", "{t}/ro/rep"],
        "--output {t}/ro/rep is not writable", a_read_only_folder),
    Row("draw-out-read-only", ["draw", "lenet5", "--out", "{t}/ro/m.svg"], "--out {t}/ro/m.svg is not writable",
        a_read_only_folder),
    Row("compare-output-read-only", ["compare", "lenet", "--data", "digits", "--output", "{t}/ro/c"],
        "is not writable", a_read_only_folder),
    Row("train-output-read-only", [*LENET, "--output", "{t}/ro/t"], "is not writable", a_read_only_folder),
    Row("lr-find-output-is-a-file", ["lr-find", "lenet5", "--data", "digits", "--output", "{t}/taken.txt"],
        "--output {t}/taken.txt is a file; give a folder", a_file),
    Row("lr-find-output-under-a-file", ["lr-find", "lenet5", "--data", "digits", "--output", "{t}/taken.txt/sub"],
        "--output {t}/taken.txt/sub lies under {t}/taken.txt, which is a file; choose another folder", a_file),

    # ----- lr-find's range
    Row("lr-find-end-below-start", ["lr-find", "lenet5", "--output", "{t}/o", "--start-lr", "1", "--end-lr", "0.1"],
        "--end-lr 0.1 must be greater than --start-lr 1"),
    Row("lr-find-end-equals-start", ["lr-find", "lenet5", "--output", "{t}/o", "--start-lr", "0.1", "--end-lr",
                                     "0.1"], "--end-lr 0.1 must be greater than --start-lr 0.1"),
    Row("lr-find-too-few-steps", ["lr-find", "lenet5", "--output", "{t}/o", "--steps", "4"],
        "--steps must be at least 5, got 4"),
    Row("lr-find-zero-steps", ["lr-find", "lenet5", "--output", "{t}/o", "--steps", "0"],
        "--steps: must be a positive integer, got 0"),
    Row("lr-find-zero-start", ["lr-find", "lenet5", "--output", "{t}/o", "--start-lr", "0"],
        "--start-lr: must be a positive number, got 0"),
    Row("lr-find-infinite-end", ["lr-find", "lenet5", "--output", "{t}/o", "--end-lr", "inf"],
        "--end-lr: must be a positive number, got inf"),

    # ----- data a classifier cannot learn from
    Row("one-class-folder", ["train", "lenet", "--data", "{t}/one", "--output", "{t}/run"],
        "{t}/one has one class (cat); a classifier needs two or more class folders", a_one_class_folder),
    Row("loose-image-in-a-split-folder", ["train", "lenet", "--data", "{t}/s", "--output", "{t}/run"],
        "train/preview.png is not inside a class folder of train/; lay images out as root/train/<class>/<image>",
        a_split_folder_with_a_loose_image),
    Row("test-classes-named-unlike-training", ["train", "lenet", "--data", "{t}/s", "--output", "{t}/run"],
        "{t}/s: the test split has classes the training split lacks: Cat (class folders must be named alike",
        a_test_split_named_unlike_training),
    Row("output-inside-the-data-folder", ["train", "lenet", "--data", "{t}/two", "--output", "{t}/two/runs/a"],
        "--output {t}/two/runs/a lies inside the data folder {t}/two: its checkpoints and curves would be read as "
        "images of a class the next time; give --output outside it", a_two_class_folder),
    Row("empty-test-split", ["train", "lenet", "--data", "{t}/two", "--val-fraction", "0.01", "--output", "{t}/run"],
        "{t}/two yields 20 training and 0 test images; both splits need images (add a test/ folder, or raise "
        "--val-fraction from 0.01)", a_two_class_folder),
    # a loss that is NaN before any epoch finished: nothing was saved, and the line says so
    Row("nan-in-epoch-1", [*LENET, "--lr", "1e10", "--epochs", "1", "--no-progress", "--output", "{t}/run"],
        "the training loss became nan at step 10 (epoch 1); lower --lr (now 1e+10) or add --clip-grad; "
        "nothing was saved, so {t}/run can take the new run", trains=True),
    Row("split-folders-of-other-names", ["train", "lenet", "--data", "{t}/s", "--output", "{t}/run"],
        "{t}/s: every image lies two folders down (e.g. test_set/cat/0.png), so its top folders (test_set/, "
        "train_set/) would be read as classes; convolab reads top folders as splits only when they are named train/, "
        "test/ or val/", a_folder_of_other_split_names),
    Row("split-folders-beside-another-folder", ["train", "lenet", "--data", "{t}/s", "--output", "{t}/run"],
        "{t}/s holds split folders (test/, train/) beside other folders (unlabeled/), which would all be read as "
        "classes; move unlabeled/ out of it", a_split_folder_beside_an_unlabeled_folder),
    Row("empty-class-folder-of-a-cached-folder", ["train", "lenet", "--data", "{t}/s", "--output", "{t}/run"],
        "class folder {t}/s/test/bird holds no image; remove it, add images, or pass --skip-bad-images",
        a_cached_folder_then_empty_class_folders),
    Row("streamed-unreadable-image", ["train", "lenet5_modern", "--data", "{t}/p", "--loader", "stream", "--workers",
                                      "0", "--batch-size", "4", "--epochs", "1", "--no-progress", "--output",
                                      "{t}/run"],
        "image {t}/p/test/b/0.png cannot be decoded (not an image format PIL recognises); fix or remove it",
        a_streamed_folder_with_an_unreadable_image, trains=True),
    Row("resume-after-a-class-renamed", ["train", "--resume", "{t}/r"],
        "--data {t}/two no longer holds the classes {t}/r was trained on (gone: dog; new: wolf): restore the data "
        "as it was, or start a new run from its weights with --init-from {t}/r/last.pt",
        a_run_whose_class_folder_was_renamed),
    Row("evaluate-on-data-of-other-classes", ["evaluate", "{t}/r", "--data", "digits"],
        "the data has 10 of 10 classes the checkpoint does not know: 0, 1, 2, 3, 4 and 5 more; the checkpoint's 2 "
        "classes are cat, dog", a_run_whose_class_folder_was_renamed),
    # a checkpoint of preact_resnet164 written before its stride moved to the first 1x1 (layout revision 2)
    Row("evaluate-a-checkpoint-of-an-older-layout", ["evaluate", "{t}/r"],
        "{t}/r/best.pt holds preact_resnet164 weights of layout revision 1, which this convolab no longer builds: "
        "revision 2 changed what the same weights compute (the downsampling units' stride moved from the 3x3 to the "
        "first 1x1, as in the authors' code); retrain the model, or use the file with the older convolab that wrote "
        "it (the file does not record which)", a_run_of_another_layout),
    Row("resume-a-last-pt-of-an-older-layout", ["train", "--resume", "{t}/r", "--epochs", "2"],
        "{t}/r/last.pt holds preact_resnet164 weights of layout revision 1, which this convolab no longer builds",
        a_run_of_another_layout),
    Row("resume-a-run-of-an-own-model-without-it", ["train", "--resume", "{t}/r"],
        "{t}/r is a run of a model of no registered name (given to Trainer(config, model=...)), stopped before its "
        "first checkpoint; continue it with Trainer.resume('{t}/r', model=...).fit() in Python",
        a_run_of_an_own_model_stopped_early),
    Row("init-from-a-checkpoint-of-an-older-layout",
        ["train", "preact_resnet164", "--data", "{t}/two", "--val-fraction", "0.5", "--epochs", "1", "--batch-size",
         "4", "--image-size", "8", "--init-from", "{t}/r/last.pt", "--output", "{t}/r2"],
        "{t}/r/last.pt holds preact_resnet164 weights of layout revision 1, which this convolab no longer builds",
        a_run_of_another_layout),
    Row("predict-with-a-checkpoint-of-a-newer-layout", ["predict", "{t}/r/last.pt", "{t}/two/cat/0.png"],
        "{t}/r/last.pt holds preact_resnet164 weights of layout revision 3, written by a newer convolab (9.9.0); "
        "this convolab (0.1.0) builds revision 2 at most: upgrade convolab", lambda t: a_run_of_another_layout(t, 3)),
    Row("cuda-graphs-with-accumulate", [*LENET, "--compile", "--compile-mode", "reduce-overhead", "--accumulate", "2"],
        "--accumulate 2 sums the gradients of several batches, which --compile-mode reduce-overhead's CUDA graphs "
        "would overwrite; give --accumulate 1 or --compile-mode default"),
    Row("model-option-in-chans", [*LENET, "--model-option", "in_chans=3"],
        "--model-option in_chans come from the data (its classes; 1 channel for grey images, 3 for colour), not "
        "from an option: leave them out"),
    Row("compare-where-a-models-folder-is-a-file", ["compare", "lenet5_modern", "lenet5", "--data", "digits",
                                                    "--output", "{t}"],
        "{t}/runs/lenet5 is a file, where the comparison would train lenet5: remove it or choose another --output",
        lambda t: (t / "runs").mkdir() or (t / "runs" / "lenet5").write_text("keep me")),
    Row("compare-where-a-models-folder-holds-other-files", ["compare", "lenet5_modern", "lenet5", "--data", "digits",
                                                            "--output", "{t}"],
        "{t}/runs/lenet5 already holds files that are not a run (notes.txt), where the comparison would train "
        "lenet5: move them out or choose another --output",
        lambda t: (t / "runs" / "lenet5").mkdir(parents=True)
        or (t / "runs" / "lenet5" / "notes.txt").write_text("keep me")),
    Row("compare-where-runs-is-a-file", ["compare", "lenet5_modern", "--data", "digits", "--output", "{t}"],
        "{t}/runs is a file, where the comparison would keep its runs: remove it or choose another --output",
        lambda t: (t / "runs").write_text("keep me")),
    Row("mixup-batch-of-one", [*LENET, "--batch-size", "1", "--mixup", "0.2", "--output", "{t}/run"],
        "--mixup mixes the images of a batch, but --batch-size 1 holds one image: give --batch-size 2 or more, or "
        "leave out --mixup"),
    Row("nproc-mixup-one-image-a-process", [*LENET, "--nproc", "2", "--batch-size", "2", "--mixup", "0.2",
                                            "--output", "{t}/run"],
        "--mixup mixes the images of a batch, but each process's batch holds 1; give --batch-size 4 or more "
        "(2 a process)"),
    Row("compare-cutmix-batch-of-one", ["compare", "lenet", "--data", "digits", "--batch-size", "1", "--cutmix", "1",
                                        "--output", "{t}/c"],
        "--cutmix mixes the images of a batch, but --batch-size 1 holds one image: give --batch-size 2 or more, or "
        "leave out --cutmix"),
    Row("features-empty-test-split", ["features", "{d}/run", "--data", "{t}/few", "--out", "{t}/f.npz"],
        "{t}/few yields 6 training and 0 test images; both splits need images (add a test/ folder, or more images "
        "of each class: of a folder without test/, this command holds out 0.1 of each class, as `convolab train "
        "--val-fraction 0.1` would, and takes no --val-fraction)",
        lambda t: write_png_folder(t / "few", per_class=3, size=28, classes=("a", "b"), mode="L", split_dirs=False)),
    Row("reproduce-empty-test-split", ["reproduce", "degradation", "--quick", "--data", "{t}/few", "--output",
                                       "{t}/rep"],
        "{t}/few yields 6 training and 0 test images; both splits need images (add a test/ folder, or more images "
        "of each class: of a folder without test/, this command holds out 0.1 of each class, as `convolab train "
        "--val-fraction 0.1` would, and takes no --val-fraction)",
        lambda t: write_png_folder(t / "few", per_class=3, size=32, classes=("a", "b"), split_dirs=False)),
    Row("features-csv-empty-test-split", ["features", "{d}/run", "--data", "{t}/labels.csv", "--out", "{t}/f.npz"],
        "{t}/labels.csv yields 4 training and 0 test rows; both splits need rows (add a split column of train/test, "
        "or more rows of each class", csv_edited(lambda h, rows: rows.__delitem__(slice(4, None)))),
    Row("features-out-a-file-of-the-run", ["features", "{d}/run", "--out", "{d}/run/best.pt"],
        "--out {d}/run/best.pt is the best.pt of the run in {d}/run"),
    Row("features-out-the-checkpoint-read", ["features", "{d}/crop.pt", "--out", "{d}/crop.pt"],
        "--out {d}/crop.pt is the checkpoint being read: the features would replace it; give another file, e.g. "
        "features.npz"),
    Row("features-out-a-safetensors-file", ["features", "{d}/st", "--out", "{d}/st/model.safetensors"],
        "which the features would replace"),
    Row("predict-onnx-without-metadata", ["predict", "{t}/plain.onnx", "{d}/digit.png"],
        "{t}/plain.onnx's metadata lacks or garbles 'classes'", an_onnx_model_of_anothers),
    Row("output-name-too-long", [*LENET, "--output", "{t}/" + "a" * 300], "cannot be used (File name too long); "
        "choose another folder"),
    Row("draw-out-name-too-long", ["draw", "lenet5", "--out", "{t}/" + "a" * 300 + ".svg"],
        "cannot be used (File name too long); choose another file"),
    Row("demo-output-name-too-long", ["demo", "resnet-mnist", "--output", "{t}/" + "a" * 300],
        "cannot be used (File name too long); choose another folder"),
    Row("lr-find-one-class-leaves-no-folder", ["lr-find", "lenet5", "--data", "{t}/one", "--output", "{t}/lr"],
        "{t}/one has one class (cat)", a_one_class_folder),
    *[Row(f"{verb}-output-in-{where}", [*argv, "--output", f"/{where}/x"], f"--output /{where}/x ")
      for verb, argv in (("compare", ["compare", "lenet5_modern", "--data", "digits"]),
                         ("report", ["report", "{d}/run"]),
                         ("reproduce", ["reproduce", "batchnorm", "--quick", "--data", "digits"]))
      for where in ("sys", "proc")],
    Row("report-into-an-experiment", ["report", "{d}/run", "--output", "{t}"],
        "--output {t} holds an experiment (experiment.json); its curves.png would be overwritten", an_experiment),
    Row("compare-into-an-experiment", ["compare", "lenet5_modern", "--data", "digits", "--output", "{t}"],
        "--output {t} holds an experiment (experiment.json); the comparison's report would overwrite its curves.png",
        an_experiment),
    Row("demo-typo-of-a-moved-demo", ["demo", "batchnor"], "did you mean batchnorm?"),
    Row("report-output-name-too-long", ["report", "{d}/run", "--output", "{t}/" + "a" * 300],
        "cannot be used (File name too long)"),
    Row("reproduce-output-name-too-long", ["reproduce", "batchnorm", "--quick", "--output", "{t}/" + "a" * 300],
        "cannot be used (File name too long)"),
    Row("compare-output-name-too-long", ["compare", "lenet5_modern", "--data", "digits", "--output",
                                         "{t}/" + "a" * 300], "cannot be used (File name too long)"),
    Row("threads-beyond-the-cores", [*LENET, "--threads", "100000", "--output", "{t}/run"],
        f"--threads 100000 is more than 4 threads a core on this machine's {usable_cores()} cores"),
    Row("image-size-beyond-the-memory", ["train", "resnet20", "--data", "digits", "--image-size", "100000",
                                         "--output", "{t}/run"],
        "one 100000x100000 px image does not fit in this machine's memory"),
    Row("loss-weighs-every-output-0", [*LENET, "--loss", "main=0", "--output", "{t}/run"],
        "--loss weighs every output 0 (main=0); give at least one a weight above 0"),
    Row("output-empty", [*LENET, "--output", ""], "argument --output: is empty; give a path"),
    Row("data-dir-empty", [*LENET, "--data-dir", "", "--output", "{t}/run"], "argument --data-dir: is empty"),
    Row("compare-seeds-past-the-most", ["compare", "lenet", "--seeds", "99999999999", "--output", "{t}/c"],
        "at most 1000 seeds are taken (each seed trains every model once); give fewer seeds"),
    Row("compare-seeds-4294967295", ["compare", "lenet", "--seeds", "4294967295", "--output", "{t}/c"],
        "seeds 4294967295: at most 1000 seeds are taken"),
    Row("reproduce-seeds-past-the-most", ["reproduce", "degradation", "--quick", "--seeds", "99999999999", "--output",
                                          "{t}/x"], "seeds 99999999999: at most 1000 seeds are taken"),
    Row("summary-huge-in-chans", ["summary", "lenet5", "--in-chans", "100000000"],
        "--in-chans 100000000: the input 100000000x28x28 at batch 1 would be 292 GiB in float32"),
    Row("summary-huge-num-classes", ["summary", "lenet5", "--num-classes", "100000000000"],
        "--num-classes 100000000000: the model's output 1x100000000000 would be 373 GiB in float32"),
    Row("draw-huge-in-chans", ["draw", "lenet5", "--out", "{t}/x.svg", "--in-chans", "100000000"],
        "--in-chans 100000000: the input 100000000x28x28 at batch 1 would be 292 GiB"),
    Row("draw-huge-num-classes", ["draw", "lenet5", "--out", "{t}/x.svg", "--num-classes", "100000000000"],
        "--num-classes 100000000000: head.fc's output 1x100000000000 would be 373 GiB"),
    Row("summary-non-square-built-for-a-size", ["summary", "lenet5", "--input-size", "1x32x40"],
        "input 1x32x40 does not fit lenet5, whose layers are built for one square size (1x28x28; --model-option "
        "img_size=N builds them for N x N): give a square input"),
    Row("summary-huge-img-size", ["summary", "lenet5", "--model-option", "img_size=1000000"],
        "img_size=1000000 (input 1,1000000,1000000): the input at batch 1 would be 3,725 GiB"),
    Row("draw-huge-img-size-output", ["draw", "lenet5", "--out", "{t}/x.svg", "--model-option", "img_size=60000"],
        "give a smaller img_size (--model-option img_size=N)"),
    *[Row(f"{name}-empty", argv, words) for name, argv, words in (
        ("report-output", ["report", "{d}/run", "--output", ""],
         "argument --output: is empty; give a folder for the report"),
        ("report-run-dir", ["report", "", "--output", "{t}/rep"], "argument RUN_DIR: is empty; give a run folder"),
        ("evaluate-data", ["evaluate", "{d}/run", "--data", ""],
         "argument --data: is empty; give a data set name or an image folder/tar"),
        ("evaluate-data-dir", ["evaluate", "{d}/run", "--data-dir", ""],
         "argument --data-dir: is empty; give a folder"),
        ("evaluate-output", ["evaluate", "{d}/run", "--output", ""], "argument --output: is empty; give a folder"),
        ("evaluate-weights", ["evaluate", "resnet18", "--weights", ""],
         "argument --weights: is empty; give the name of published weights"),
        ("evaluate-checkpoint", ["evaluate", ""],
         "argument checkpoint: is empty; give a checkpoint file or run folder"),
        ("features-out", ["features", "{d}/run", "--out", ""],
         "argument --out: is empty; give a file name such as features.npz"),
        ("features-data", ["features", "{d}/run", "--data", "", "--out", "{t}/f.npz"], "argument --data: is empty"),
        ("draw-out", ["draw", "lenet5", "--out", ""], "argument --out: is empty; give a file name such as model.svg"),
        ("summary-weights", ["summary", "lenet5", "--weights", ""],
         "argument --weights: is empty; give the name of published weights"),
        ("demo-name", ["demo", ""], "argument NAME: is empty; give a demo name (`convolab demo --list`)"),
        ("demo-output", ["demo", "resnet-mnist", "--output", ""], "argument --output/--out: is empty; give a folder"),
        ("export-out", ["export", "{d}/run", "--out", ""],
         "argument --out: is empty; give a file (a folder for safetensors)"),
        ("export-checkpoint", ["export", ""], "argument checkpoint: is empty"),
        ("predict-image", ["predict", "{d}/run", ""], "argument images: is empty; give image files"),
        ("predict-checkpoint", ["predict", "", "{d}/digit.png"], "argument checkpoint: is empty"),
        ("finetune-until", ["finetune", "{d}/run", "--until", "", "--output", "{t}/ft"],
         "argument --until: is empty; give a layer name"),
        ("finetune-checkpoint", ["finetune", "", "--data", "digits"], "argument CHECKPOINT: is empty"),
        ("compare-resume", ["compare", "--resume", ""],
         "argument --resume: is empty; give the comparison's folder"),
        ("reproduce-resume", ["reproduce", "--resume", ""],
         "argument --resume: is empty; give the experiment's folder"),
        ("reproduce-name", ["reproduce", ""], "argument NAME: is empty; give an experiment name"))],
    Row("lr-negative-exponent", ["train", "lenet", "--lr", "-1e-3"],
        "argument --lr: must be a positive number, got -0.001"),
    Row("lr-minus-inf", ["train", "lenet", "--lr", "-inf"], "argument --lr: must be a positive number, got -inf"),
    Row("lr-find-start-negative-exponent", ["lr-find", "lenet5", "--start-lr", "-1e-7"],
        "argument --start-lr: must be a positive number, got -1e-7"),
    Row("compare-weight-decay-negative-exponent", ["compare", "lenet", "--weight-decay", "-.5e-1", "--output",
                                                   "{t}/c"],
        "argument --weight-decay: must be a number >= 0, got -0.05"),
    Row("summary-depth-negative-exponent", ["summary", "lenet5", "--depth", "-1e3"],
        "argument --depth: expected a positive integer, got '-1e3'"),
    Row("export-out-name-too-long", ["export", "{d}/run", "--out", "{t}/" + "x" * 300 + "/m.onnx"],
        "cannot be used (File name too long)"),
    Row("features-out-name-too-long", ["features", "{d}/run", "--out", "{t}/" + "x" * 300 + "/f.npz"],
        "cannot be used (File name too long)"),
    Row("compare-threads-beyond-the-cores", ["compare", "lenet5", "lenet5_bn", "--data", "digits", "--threads",
                                             "100000", "--output", "{t}/c"], "--threads 100000 is more than 4"),
    Row("reproduce-threads-beyond-the-cores", ["reproduce", "batchnorm", "--quick", "--data", "digits", "--threads",
                                               "100000", "--output", "{t}/r"], "--threads 100000 is more than 4"),
    Row("finetune-takes-no-model-option", ["finetune", "{d}/run", "--data", "digits", "--model-option", "a=1",
                                           "--output", "{t}/ft"], "unrecognized arguments: --model-option a=1"),
    # A subset's line waits for the model and options to be checked (before: said first, the error second)
    Row("train-subset-of-an-unknown-model", ["train", "lenet6", "--data", "digits", "--train-subset", "100",
                                             "--output", "{t}/o"], "unknown model 'lenet6'"),
    Row("train-subset-with-an-unknown-model-option", ["train", "lenet5", "--data", "digits", "--train-subset", "100",
                                                      "--model-option", "foo=1", "--output", "{t}/o"],
        "unexpected keyword argument 'foo'"),
    Row("lr-find-subset-with-another-monitor", ["lr-find", "lenet5", "--data", "digits", "--test-subset", "20",
                                                "--monitor", "test_mae_age", "--output", "{t}/o"],
        "--monitor test_mae_age is not a figure of this run"),
    # An option that fails every compared model is refused before the comparison exists (before: each "failed", a
    # report of none, exit 1)
    Row("compare-monitor-that-no-run-has", ["compare", "lenet5", "lenet5_bn", "--data", "digits", "--monitor",
                                            "test_acc_parity", "--output", "{t}/c"],
        "--monitor test_acc_parity is not a figure of this run"),
    # An experiment an older convolab wrote (reproduce.json, no experiment.json) is one too (before: report and
    # compare wrote over its curves.png; reproduce --resume said it was not an experiment's folder)
    Row("report-into-an-older-experiment", ["report", "{d}/run", "--output", "{t}"],
        "--output {t} holds an experiment (reproduce.json); its curves.png would be overwritten", an_older_experiment),
    Row("compare-into-an-older-experiment", ["compare", "lenet5_modern", "--data", "digits", "--output", "{t}"],
        "--output {t} holds an experiment (reproduce.json)", an_older_experiment),
    # A launcher's variable holding junk (before: int()'s traceback)
    Row("train-rank-not-a-number", ["train", "lenet5", "--data", "digits", "--output", "{t}/o"],
        "the environment variable RANK='abc' is not a whole number >= 0", env=(("RANK", "abc"),)),
    Row("train-world-size-not-a-number", ["train", "lenet5", "--data", "digits", "--output", "{t}/o"],
        "the environment variable WORLD_SIZE='x' is not a whole number >= 0", env=(("RANK", "0"), ("WORLD_SIZE", "x"))),
    Row("train-world-size-a-superscript-digit", ["train", "lenet5", "--data", "digits", "--output", "{t}/o"],
        "the environment variable WORLD_SIZE='²' is not a whole number >= 0", env=(("RANK", "0"), ("WORLD_SIZE", "²"))),
    Row("reproduce-resume-of-an-older-experiment", ["reproduce", "--resume", "{t}"],
        "{t} holds an experiment of an older convolab (its reproduce.json, no experiment.json), which cannot "
        "be continued; run it again into another --output", an_older_experiment),
    Row("compare-loss-of-an-output-no-model-has", ["compare", "lenet5", "googlenet_small", "--data", "digits", "--loss",
                                                   "foo=1", "--output", "{t}/c"], "--loss names foo"),
    # The file system's root or a kernel folder as data (before: listed for ever, /proc's links leading back into
    # every folder, without a word)
    Row("evaluate-data-at-the-root", ["evaluate", "{d}/run", "--data", "/"],
        "/ is the file system's root, not a folder of images"),
    Row("evaluate-data-in-proc", ["evaluate", "{d}/run", "--data", "/proc/self"],
        "/proc/self is a folder of the kernel's, not a folder of images"),
    # A path with a name over the system's 255 bytes, wherever a verb first looks at it (before: a traceback of
    # OSError ENAMETOOLONG from Path.exists or a glob, exit 1)
    *[Row(f"{name}-name-too-long", argv, "a name in it is longer than the system allows (File name too long); give "
          "a shorter path") for name, argv in (
        ("features-checkpoint", ["features", LONG, "--out", "{t}/f.npz"]),
        ("features-data", ["features", "{d}/run", "--data", LONG, "--out", "{t}/f.npz"]),
        ("train-data", ["train", "lenet5", "--data", LONG, "--output", "{t}/run"]),
        ("train-resume", ["train", "--resume", LONG]),
        ("train-init-from", ["train", "lenet5", "--data", "digits", "--init-from", LONG, "--output", "{t}/run"]),
        ("report-run", ["report", LONG, "--output", "{t}/rep"]),
        ("evaluate-checkpoint", ["evaluate", LONG]),
        ("evaluate-data", ["evaluate", "{d}/run", "--data", LONG]),
        ("predict-checkpoint", ["predict", LONG, "{d}/digit.png"]),
        ("export-checkpoint", ["export", LONG]),
        ("finetune-checkpoint", ["finetune", LONG, "--data", "digits", "--output", "{t}/ft"]),
        ("compare-data", ["compare", "lenet5", "--data", LONG, "--output", "{t}/c"]),
        ("compare-resume", ["compare", "--resume", LONG]),
        ("reproduce-resume", ["reproduce", "--resume", LONG]),
        ("lr-find-data", ["lr-find", "lenet5", "--data", LONG, "--output", "{t}/lr"]))],
    # (before: a RuntimeError of Path.resolve, "Symlink loop from", making --data-dir absolute)
    Row("train-data-dir-a-loop-of-links", ["train", "lenet5", "--data", "mnist", "--data-dir", "{t}/loop1",
                                           "--output", "{t}/run"], "mnist not found under {t}/loop1/MNIST/raw",
        a_loop_of_links),
    # A newline (or another line break) in a path the line quotes: shown escaped, the line one line (before: two)
    Row("evaluate-checkpoint-with-a-newline", ["evaluate", "{t}/bad\nname"],
        "{t}/bad\\nname is a folder without best.pt or last.pt", a_folder_named_with_a_newline),
    Row("predict-checkpoint-with-a-newline", ["predict", "{t}/bad\nname", "{d}/digit.png"],
        "{t}/bad\\nname is a folder without best.pt or last.pt", a_folder_named_with_a_newline),
    Row("train-data-with-a-newline", ["train", "lenet5", "--data", "{t}/bad\nname", "--output", "{t}/run"],
        "no images found in {t}/bad\\nname (looked for", a_folder_named_with_a_newline),
    Row("report-run-with-a-newline", ["report", "{t}/bad\nname", "--output", "{t}/rep"],
        "{t}/bad\\nname is not a run folder (no config.json)", a_folder_named_with_a_newline),
    Row("report-run-with-other-line-breaks", ["report", "{t}/a\rb\x85c\u2028d\x0be", "--output", "{t}/rep"],
        "{t}/a\\rb\\x85c\\u2028d\\x0be"),
    Row("evaluate-unrecognized-argument-with-a-newline", ["evaluate", "{d}/run", "bad\nname"],
        "unrecognized arguments: bad\\nname (see `convolab evaluate --help`)"),
    # features --out onto the data it reads, into its folder, or onto a file it did not write (before: replaced by
    # an .npz without a word, exit 0)
    Row("features-out-is-the-labels-csv", ["features", "{d}/run", "--data", "{t}/labels.csv", "--out",
                                           "{t}/labels.csv"],
        "--out {t}/labels.csv is the data the features are computed from ({t}/labels.csv), which the features would "
        "replace", a_labels_csv),
    Row("features-out-is-a-link-to-the-labels-csv", ["features", "{d}/run", "--data", "{t}/labels.csv", "--out",
                                                     "{t}/link.csv"],
        "--out {t}/link.csv is the data the features are computed from", a_labels_csv_and_a_link_to_it),
    Row("features-out-onto-an-image-of-the-data-folder", ["features", "{d}/run", "--data", "{t}/two", "--out",
                                                          "{t}/two/cat/0.png"],
        "--out {t}/two/cat/0.png lies inside the data folder {t}/two", a_two_class_folder),
    Row("features-out-new-inside-the-data-folder", ["features", "{d}/run", "--data", "{t}/two", "--out",
                                                    "{t}/two/f.npz"],
        "--out {t}/two/f.npz lies inside the data folder {t}/two", a_two_class_folder),
    Row("features-out-onto-an-image", ["features", "{d}/run", "--out", "{t}/0.png"],
        "--out {t}/0.png exists and is not a features file `convolab features` wrote", a_labels_csv),
    Row("features-out-onto-an-empty-file", ["features", "{d}/run", "--out", "{t}/empty.txt"],
        "--out {t}/empty.txt exists and is not a features file `convolab features` wrote", an_empty_file),
    # A --data-dir that cannot be written: the folder named, not the network (before: "...; no network?")
    Row("train-download-into-a-file", ["train", "lenet5", "--data", "mnist", "--download", "--data-dir",
                                       "{t}/empty.txt/data", "--output", "{t}/run"],
        "mnist could not be downloaded into {t}/empty.txt/data/MNIST/raw: that folder cannot be written (Not a "
        "directory); give --data-dir a writable folder", an_empty_file),
    Row("draw-out-onto-a-fifo", ["draw", "lenet5", "--out", "{t}/pipe.svg"],
        "{t}/pipe.svg exists and is not a regular file (a device, a FIFO or a socket)",
        lambda t: os.mkfifo(t / "pipe.svg")),
]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in CASES])
def test_bad_input_is_one_line_exit_2(files, row, tmp_path, capsys, caplog, monkeypatch):
    if row.make:
        row.make(tmp_path)
        capsys.readouterr()  # (what making a row's files printed, a run trained for it, is not the row's)
        caplog.clear()  # (nor what it logged: torch.export's trace records of a program made for it)
    args = [a.format(d=files, t=tmp_path) for a in row.argv]
    if any(a.endswith(".onnx") for a in args) and not (files / "model.onnx").exists():
        pytest.skip("onnx and onnxruntime are not installed (pip install -e '.[export]')")
    for name in row.hidden:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    for name, value in row.env:
        monkeypatch.setenv(name, value.format(d=files, t=tmp_path))
        if name == "TMPDIR":
            monkeypatch.setattr(tempfile, "tempdir", None)  # (gettempdir() reads $TMPDIR again)
    before = {p: p.read_bytes() for p in [*tmp_path.rglob("*"), *files.rglob("*")] if p.is_file()}
    paths_before = set(tmp_path.rglob("*"))
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
    assert row.words.format(d=files, t=tmp_path) in lines[0], lines[0]
    assert not [n for n, _ in ARGUMENT.findall(lines[0]) if n in OPTION_NAMES], lines[0]  # (said by their flags)
    assert "Traceback" not in err and "object at 0x" not in err, err
    assert row.trains or not out, out
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records] == []
    assert all(p.is_file() and p.read_bytes() == data for p, data in before.items())  # nothing lost
    if not row.trains:  # (a run that started keeps its folder and config.json: the record of what was tried)
        assert sorted(map(str, set(tmp_path.rglob("*")) - paths_before)) == []  # nothing half-made left behind


def test_an_image_between_pils_warning_and_its_limit_is_decoded_without_a_warning(files, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(files / "run"), str(files / "large.png")]) == 0
    assert [str(w.message) for w in caught] == []
    out, err = capsys.readouterr()
    assert out.startswith(str(files / "large.png")) and not err, err
