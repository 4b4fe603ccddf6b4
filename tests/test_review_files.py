"""Faults found in this session's review (the image files users have, the upper layers read line by line, tests
that could not fail, and the left-alone list): each test fails on the code before its fix."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_folder
from PIL import Image

import convolab.compare.report as report_module
from convolab import _atomic
from convolab._atomic import restored_on_failure
from convolab.cli import main
from convolab.compare import read_run, report_runs
from convolab.data import load_data, stratified_split
from convolab.data.archive import ImageSource
from convolab.data.decode import read_image
from convolab.demos.lecture import RECIPES, lecture_config
from convolab.errors import ConfigError, DataError, FieldError
from convolab.export import ExportError, export_onnx, model_from_checkpoint, predict_onnx
from convolab.models import create_model
from convolab.training import Trainer, build, rundir
from convolab.training.config import TrainConfig
from convolab.training.inference import load_trained_model, predict_targets
from convolab.training.lr_find import LRFindResult


def test_an_image_size_the_model_cannot_take_is_refused_before_the_data_are_read(tmp_path, monkeypatch):
    """`train lenet5 --image-size 64` on the CIFAR-10 tar decoded all 60,000 images at 64 px (42 s) before the
    size was refused; the named model is now probed first."""
    def read(*args, **kwargs):
        raise AssertionError("the data were read before the size was checked")

    monkeypatch.setattr(build, "load_run_data", read)
    config = TrainConfig(model="lenet5", data="digits", image_size=64, epochs=1, output=str(tmp_path / "run"))
    with pytest.raises(FieldError, match=r"64 does not fit lenet5 \(its layers are built for 28 px, at most 31 px\)"):
        build.build_run(config)


def test_summary_and_draw_build_the_model_with_its_options(tmp_path, capsys):
    """`summary`/`draw` could not look at lenet5 built for 64 px (`train --model-option img_size=64` trains it):
    they took no --model-option, and 64 px was refused in torch's words. Now the option builds it: its first linear
    layer takes 16 x 14 x 14 features at 64 px (5 x 5 at 28 px)."""
    assert main(["summary", "lenet5", "--input-size", "1,64,64", "--model-option", "img_size=64", "--json"]) == 0
    layers = {row["name"]: row for row in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["head.fc1"]["macs"] == 16 * 14 * 14 * 120
    assert main(["draw", "lenet5", "--out", str(tmp_path / "l.svg"), "--input-size", "1,64,64",
                 "--model-option", "img_size=64"]) == 0
    assert "16x14x14" in (tmp_path / "l.svg").read_text()  # (the shape after the features, drawn)


@pytest.mark.parametrize("name, hint", [
    ("lenet5", "without folding, a larger difference is float32 round-off: try a larger `tolerance` or `rtol`"),
    ("lenet5_bn", "try `fold=False` to export without batch-norm folding"),
])
def test_an_export_beyond_its_tolerance_suggests_no_fold_only_where_batch_norms_were_folded(tmp_path, name, hint):
    """lenet5 has no batch norm, yet its refused export said "try --no-fold", which gives the same difference."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    with pytest.raises(ExportError) as caught:
        export_onnx(model, tmp_path / "m.onnx", (1, 28, 28), tolerance=0.0, rtol=0.0)
    assert f"nothing was written ({hint})" in str(caught.value)
    assert not (tmp_path / "m.onnx").exists()


def test_a_safetensors_export_that_fails_midway_leaves_the_folder_as_it_was(digits_run, tmp_path, capsys):
    """Over an earlier export, config.json was renamed into place before model.safetensors failed to: one model's
    config beside another's weights, though the docstring promised "a failed export leaves `folder` as it was"."""
    folder = tmp_path / "sf"
    assert main(["export", str(digits_run), "--format", "safetensors", "--out", str(folder)]) == 0
    config = json.loads((folder / "config.json").read_text())
    config["model_options"] = {"marker": 1}  # (told apart from what the second export writes)
    (folder / "config.json").write_text(json.dumps(config))
    before = (folder / "config.json").read_bytes()
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors" / "x").mkdir(parents=True)  # the second rename fails: a folder stands there
    capsys.readouterr()
    assert main(["export", str(digits_run), "--format", "safetensors", "--out", str(folder)]) == 2
    assert "cannot be written (Is a directory)" in capsys.readouterr().err
    assert (folder / "config.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # nothing kept aside


def test_restored_on_failure_puts_back_every_file_or_removes_the_new_one(tmp_path):
    old, new = tmp_path / "a.txt", tmp_path / "b.txt"
    old.write_text("old a")

    def replace(path, text):  # (as the writes it guards replace their files: renamed onto them)
        (tmp_path / "staged").write_text(text)
        os.replace(tmp_path / "staged", path)

    with pytest.raises(KeyboardInterrupt), restored_on_failure([old, new]):
        replace(old, "new a")
        replace(new, "new b")
        raise KeyboardInterrupt  # (interrupted after both were replaced)
    assert old.read_text() == "old a" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with restored_on_failure([old, new]):
        replace(old, "new a")
    assert old.read_text() == "new a" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_evaluate_on_a_safetensors_folder_writes_beside_it_not_inside(digits_run, tmp_path, capsys):
    """The default output was `SF/evaluation`, inside the folder `export` writes, though the help says "an
    evaluation folder beside the checkpoint" (and `export` names its files beside a safetensors folder)."""
    folder = tmp_path / "sf"
    assert main(["export", str(digits_run), "--format", "safetensors", "--out", str(folder)]) == 0
    for given in (folder, folder / "model.safetensors"):
        assert main(["evaluate", str(given), "--data", "digits"]) == 0
        assert (tmp_path / "sf-evaluation" / "confusion.png").is_file()
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_predict_decodes_a_grey_streams_crops_grey_for_a_colour_model(tmp_path, capsys):
    """A 3-channel model fine-tuned on a streamed grey folder saw every file decoded grey (the stream's mode), a
    colour file too; `predict` decoded the crop in the model's mode (RGB), 0.11 apart in probability on CIFAR
    pictures. The checkpoint (and an ONNX export) now records the stream's mode, and predict decodes in it."""
    write_png_folder(tmp_path / "colour", per_class=8, size=32)
    write_png_folder(tmp_path / "grey", per_class=8, size=32, mode="L")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "grey" / "test" / "a" / "c.png")
    common = ["--epochs", "1", "--batch-size", "8", "--no-progress"]
    assert main(["train", "lenet5_modern", "--data", str(tmp_path / "colour"), *common,
                 "--output", str(tmp_path / "run")]) == 0
    assert main(["finetune", str(tmp_path / "run"), "--data", str(tmp_path / "grey"), "--loader", "stream",
                 "--workers", "0", *common, "--output", str(tmp_path / "ft")]) == 0
    loaded = load_trained_model(tmp_path / "ft")
    ckpt = loaded.checkpoint
    assert ckpt["in_chans"] == 3 and ckpt["preprocess"] == "center-crop" and ckpt["crop_mode"] == "L"
    picture = tmp_path / "grey" / "test" / "a" / "c.png"

    def probs(mode: str) -> torch.Tensor:
        image = read_image(picture, center_crop_size=int(ckpt["image_size"][0]), crop_mode=mode)
        with torch.no_grad():
            return loaded.model(loaded.transform(image[None])).softmax(1)[0]

    assert not torch.allclose(probs("L"), probs("RGB"), atol=1e-4)  # (the two readings tell apart)
    (top, _), = predict_targets(loaded, [picture], topk=3)
    expected = probs("L")
    for name, p in top:
        assert p == pytest.approx(float(expected[loaded.classes.index(name)]), abs=1e-6)
    model, meta = model_from_checkpoint(tmp_path / "ft")
    assert meta.crop_mode == "L"
    if importlib.util.find_spec("onnxruntime") is not None:
        export_onnx(model, tmp_path / "m.onnx", (3, *meta.image_size), meta=meta)
        onnx_top = predict_onnx(tmp_path / "m.onnx", picture, top_k=3)[0]
        for (name, p), (onnx_name, q) in zip(top, onnx_top):
            assert name == onnx_name and q == pytest.approx(p, abs=1e-5)


def test_integer_grey_images_are_scaled_by_one_rule_whatever_their_maximum(tmp_path):
    """A 32-bit integer image (mode I; a 16-bit PNG opens so under Pillow 9) was divided by 257 only when its own
    maximum passed 255: of two exposures of one scene, the darker came out 175 times brighter."""
    scene = np.tile(np.arange(0, 256, 16, dtype=np.int64), (16, 1))
    means = {}
    for name, scale in (("light", 257 / 200), ("dark", 257 / 300)):  # maxima 308 and 205
        Image.fromarray(np.rint(scene * scale).astype(np.int32), "I").save(tmp_path / f"{name}.tif")
        means[name] = read_image(tmp_path / f"{name}.tif").float().mean().item()
    assert means["light"] == pytest.approx(1.5 * means["dark"], rel=0.1)
    full = tmp_path / "full.tif"
    Image.fromarray((scene * 257).astype(np.int32), "I").save(full)
    assert read_image(full)[0, 0].tolist() == scene[0].tolist()  # (65535 is 255)


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_skip_bad_images_leaves_out_a_class_of_no_image_and_names_what_it_skipped(tmp_path, caplog, loader):
    """Streamed, a class whose every file was bad was trained as an output no image taught (cached, it was left
    out). Cached, the skipped files were only counted, once, when the cache was made: a later run (a cache hit)
    skipped them without a word, and an empty class folder was left out silently."""
    root = write_png_folder(tmp_path / "data", per_class=8, size=16)
    (root / "train" / "junk").mkdir()
    (root / "train" / "junk" / "a.png").write_text("not an image")
    (root / "train" / "junk" / "b.jpg").write_bytes(b"")
    (root / "train" / "empty").mkdir()
    (root / "train" / "b" / "odd.png").write_text("not an image")
    for attempt in range(2 if loader == "cache" else 1):  # (the second: a cache hit)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="convolab"):
            data = load_data(str(root), skip_bad_images=True, loader=loader, workers=0)
        assert data.classes == ["a", "b", "c"], attempt
        assert "every image of class junk was skipped: it is left out" in caplog.text
        assert "left out the empty class folder" in caplog.text and "empty" in caplog.text
        if loader == "cache":
            assert f"{root / 'train' / 'b' / 'odd.png'} cannot be decoded" in caplog.text, attempt


def test_a_grey_picture_stored_as_rgb_is_read_grey_among_grey_images(tmp_path):
    """An RGB file of R = G = B among grey images was refused as "in colour (RGB) while most images are grey"; the
    streamed path and torchvision read it. Now it is grey; a picture in colour is still refused."""
    root = write_png_folder(tmp_path / "data", per_class=6, size=12, mode="L")
    grey = np.array(Image.open(root / "train" / "a" / "0.png"))
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(root / "train" / "a" / "as_rgb.png")
    data = load_data(str(root), loader="cache")
    assert data.image_shape[0] == 1 and len(data.train) == 19
    assert any(torch.equal(image[0], torch.from_numpy(grey)) for image in data.train.images)
    colour = np.repeat(grey[..., None], 3, axis=2)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(root / "train" / "a" / "colour.png")
    with pytest.raises(DataError, match="colour.png is in colour \\(RGB\\) while most images are grey"):
        load_data(str(root), loader="cache")


def test_a_changed_ds_store_or_other_non_image_file_does_not_decode_the_folder_again(tmp_path, caplog):
    """The cache key hashed every file of the folder: Finder rewriting `.DS_Store` decoded the whole folder again
    into a second cache file of the same size (convolab removes none)."""
    root = write_png_folder(tmp_path / "data", per_class=4, size=12)
    (root / "train" / "a" / ".DS_Store").write_text("a")
    with caplog.at_level(logging.INFO, logger="convolab"):
        load_data(str(root), loader="cache")
    assert "decoding 24 images" in caplog.text
    (root / "train" / "a" / ".DS_Store").write_text("rewritten by Finder")
    (root / "notes.txt").write_text("where the photos came from")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convolab"):
        load_data(str(root), loader="cache")
    assert "decoding" not in caplog.text
    (root / "train" / "a" / "0.png").write_bytes((root / "train" / "a" / "1.png").read_bytes())  # (an image: again)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convolab"):
        load_data(str(root), loader="cache")
    assert "decoding 24 images" in caplog.text


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_a_tar_reads_its_links_as_the_unpacked_folder_does(tmp_path, loader, caplog):
    """A tar's hard links (a file's second name, as tar stores it: `tar -h` stores every file met twice so) and
    symbolic links were left out without a word: 45 of a folder's 47 images, and a class folder linked into both
    splits, packed with -h, was refused as "the test split has classes the training split lacks"."""
    root = write_png_folder(tmp_path / "data", per_class=6, size=12)
    os.link(root / "train" / "a" / "0.png", root / "train" / "a" / "hard.png")
    os.symlink("1.png", root / "train" / "a" / "soft.png")
    (root / ".store").mkdir()  # (hidden: not data itself)
    shutil.move(root / "test" / "c", root / ".store" / "c_test")
    os.symlink("../.store/c_test", root / "test" / "c")  # (a class folder linked, inside the archive)
    with tarfile.open(tmp_path / "data.tar", "w") as tar:
        tar.add(root, arcname="data")  # (tarfile, as GNU tar: a file's second name a hard link, symlinks as links)
    kinds = {m.name: m.type for m in tarfile.open(tmp_path / "data.tar").getmembers()}
    assert kinds["data/train/a/hard.png"] == tarfile.LNKTYPE or kinds["data/train/a/0.png"] == tarfile.LNKTYPE
    assert kinds["data/train/a/soft.png"] == tarfile.SYMTYPE and kinds["data/test/c"] == tarfile.SYMTYPE
    folder = load_data(str(root), loader="cache")
    archive = load_data(str(tmp_path / "data.tar"), loader=loader, workers=0)
    assert (len(archive.train), len(archive.test)) == (len(folder.train), len(folder.test)) == (20, 18)
    assert archive.classes == folder.classes == ["a", "b", "c"]
    if loader == "cache":
        assert torch.equal(archive.train.images, folder.train.images)
    with tarfile.open(tmp_path / "out.tar", "w") as tar:  # a link to a file outside the archive
        tar.add(root / "train", arcname="train")
        tar.add(root / "test", arcname="test")
        link = tarfile.TarInfo("train/a/outside.png")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../elsewhere/x.png"
        tar.addfile(link)
    with pytest.raises(DataError, match="out.tar:train/a/outside.png is a link that leads nowhere in the archive"):
        load_data(str(tmp_path / "out.tar"), loader=loader, workers=0)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        skipped = load_data(str(tmp_path / "out.tar"), loader=loader, workers=0, skip_bad_images=True)
    assert len(skipped.train) == 20 and "skipped 1 link that leads nowhere" in caplog.text


def test_an_aux_drop_rate_without_auxiliary_heads_is_said_unused(caplog):
    """`--model-option aux_drop_rate=0.5` on a model built without aux_logits was recorded in config.json and never
    used, without a word."""
    config = TrainConfig(model="googlenet_tv", data="digits", image_size=64, epochs=1, batch_size=32,
                         train_subset=100, test_subset=30, model_options={"img_size": 64, "aux_drop_rate": 0.5})
    with caplog.at_level(logging.WARNING, logger="convolab"):
        build.build_run(config, folder=False)
    assert "`model_options` aux_drop_rate is not used: googlenet_tv is built without auxiliary heads" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convolab"):
        build.build_run(dataclasses.replace(config, model_options={**config.model_options, "aux_logits": True}),
                        folder=False)
    assert "aux_drop_rate is not used" not in caplog.text


def test_compare_says_once_that_a_subset_is_larger_than_its_split(tmp_path, caplog):
    """`train` warns that `--train-subset 5000` takes all of 1,438 training images; `compare` said nothing."""
    with caplog.at_level(logging.WARNING, logger="convolab"):
        assert main(["compare", "lenet5", "lenet5_bn", "--data", "digits", "--train-subset", "5000", "--test-subset",
                     "60", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "c")]) == 0
    assert caplog.text.count("--train-subset 5000 is more than the 1438 training images: all of them are used") == 1


def test_a_channel_of_one_value_everywhere_is_normalized_by_one_not_by_its_std_of_zero(tmp_path, caplog):
    """Colour photos with an empty red channel (std 0) made every input 0/0 = NaN: the run stopped on a NaN loss,
    blaming --lr. The channel is now divided by 1, with a warning."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for k, name in enumerate("ab"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 100, (16, 16, 3), dtype=np.uint8) + 100 * k
                pixels[..., 0] = 0
                Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "data" / split / name / f"{i}.png")
    with caplog.at_level(logging.WARNING, logger="convolab"):
        assert main(["train", "lenet5_modern", "--data", str(tmp_path / "data"), "--image-size", "28", "--epochs", "1",
                     "--batch-size", "8", "--no-progress", "--output", str(tmp_path / "run")]) == 0
    assert "channel 0 of the training images has one value everywhere (std 0): normalized by std 1" in caplog.text
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert ckpt["std"][0] == 1.0 and ckpt["std"][1] > 0.1


def test_features_of_a_diverged_checkpoint_is_one_line_naming_the_file(digits_run, tmp_path, capsys):
    """`features` loads the record itself, then named it in the error by the dict: 1,000 lines of tensors."""
    ckpt = torch.load(digits_run / "best.pt", weights_only=False)
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = torch.full_like(ckpt["model"][first], float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    capsys.readouterr()
    assert main(["features", str(tmp_path / "nan.pt"), "--out", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'nan.pt'}: its model outputs NaN or inf" in err, err[:300]


def test_a_held_out_split_leaves_every_class_an_image_to_train_on():
    labels = torch.tensor([0] * 1000 + [1] * 2)
    train, test = stratified_split(labels, 0.999)
    assert sorted(set(labels[train].tolist())) == [0, 1] and len(train) + len(test) == 1002
    assert len(test) == 999 + 1  # (class 0: 999 of 1000 held out; class 1: 1 of 2, not both)


def test_a_report_that_fails_midway_leaves_the_earlier_report_whole(digits_run, tmp_path, monkeypatch):
    """The four report files were written one by one (2.6 s of plotting between the table and the curves): a second
    report into the folder, or SIGTERM midway, left one report's table beside another's page."""
    out = tmp_path / "report"
    report_runs([digits_run], out, "convolab report A")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    other = Path(shutil.copytree(digits_run, tmp_path / "other"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report_runs([digits_run, other], out, "convolab report B")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_report_refuses_a_run_that_is_still_training(digits_run, tmp_path):
    """A run another command holds (still training) was reported as "interrupted", exit 0."""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    hold = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(run / '.convolab.lock')!r}, os.O_RDWR | os.O_CREAT, 0o666)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="is in use by another convolab command \\(a run still training\\?\\)"):
            report_runs([run], tmp_path / "report", "convolab report")
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "report").exists()


def test_two_demos_started_together_take_a_run_folder_each(tmp_path, monkeypatch):
    """The default runs/demo-MODEL was named, not made: two demos started together took one name, and the second
    was refused as "--output runs/demo-resnet_mnist is in use" (an --output never given)."""
    monkeypatch.chdir(tmp_path)
    first = lecture_config(RECIPES["resnet-mnist"], epochs=1)
    second = lecture_config(RECIPES["resnet-mnist"], epochs=1)
    assert Path(first.output).is_dir() and Path(second.output).is_dir() and first.output != second.output


def test_a_second_trainer_made_for_the_same_output_does_not_overwrite_the_first_ones_run(tmp_path):
    """Two Trainers made for one output before either fit shared this process's claim: the second's fit overwrote
    the first's finished run without a word."""
    first = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, progress=False,
                                output=str(tmp_path / "run")))
    second = Trainer(TrainConfig(model="lenet5", data="digits", epochs=1, progress=False, output=str(tmp_path / "run")))
    first.fit()
    with pytest.raises(ConfigError, match="already holds a run .* which a new Trainer would overwrite"):
        second.fit()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "lenet5_modern"


def test_a_claim_ends_with_its_process_though_its_forked_workers_live_on(tmp_path):
    """kill -9 of a streaming run: its DataLoader workers, forked with the lock's descriptor, kept the claim, and a
    --resume at once was refused as "in use by another convolab command" until they died."""
    script = (f"import os, sys, time\nfrom convolab.training.rundir import claim_run_dir\n"
              f"claim = claim_run_dir({str(tmp_path)!r})\npid = os.fork()\n"
              "if pid == 0:\n    null = os.open(os.devnull, os.O_WRONLY)\n    os.dup2(null, 1)\n    os.dup2(null, 2)\n"
              "    time.sleep(60)\n    os._exit(0)\n"  # (the worker: its output pipe closed, or run() waits on it)
              "print(pid, flush=True)\nos._exit(0)\n")  # (the parent dies as killed: nothing released)
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    child = int(parent.stdout.split()[0])
    try:
        os.kill(child, 0)  # (the worker lives on)
        assert not rundir.in_use(tmp_path)
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_run_folder_without_best_pt_says_its_last_pt_is_read(digits_run, tmp_path, caplog):
    """A run stopped in its first epoch has last.pt only: `evaluate RUN` scored that state without a word, though
    its --help says best.pt is used."""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    (run / "best.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_trained_model(run)
    assert "holds no best.pt (no epoch finished, or it was removed): its last.pt is read" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_trained_model(digits_run)
    assert "best.pt" not in caplog.text


def test_evaluate_says_top5_is_every_class_for_a_model_of_five_or_fewer(tmp_path, capsys):
    """A 2-class run printed "top-1 accuracy: 0.0000" then "top-5 accuracy: 1.0000" without a word on why."""
    data = write_png_folder(tmp_path / "data", per_class=6, size=28, classes=("a", "b", "c"))
    assert main(["train", "lenet5", "--data", str(data), "--epochs", "1", "--batch-size", "6", "--no-progress",
                 "--output", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "top-5 accuracy: 1.0000 (the model has 3 classes, all among every image's top 5)"


def test_lr_find_on_a_flat_curve_advises_a_larger_end_lr_not_a_lower_start(tmp_path, capsys):
    """At rates of 1e-30 the loss is flat noise: "lower --start-lr" cannot help; a larger --end-lr can."""
    rates = [1e-30 * 10 ** (i / 19) for i in range(20)]
    flat = LRFindResult(rates, [2.30 + 0.001 * (i % 3) for i in range(20)], [2.30 + 0.0001 * i for i in range(20)])
    falling = LRFindResult(rates, [2.3 - 0.1 * i for i in range(20)], [2.3 - 0.1 * i for i in range(20)])
    assert flat.flat and not falling.flat
    assert main(["lr-find", "lenet5_modern", "--data", "digits", "--start-lr", "1e-30", "--end-lr", "1e-29", "--steps",
                 "20", "--no-progress", "--output", str(tmp_path / "l")]) == 2
    assert "it barely moved (within 5%) up to 1.00e-29; 20 steps up to 1.00e-29; give a larger --end-lr" in \
        capsys.readouterr().err
    assert flat.suggestion is None and falling.suggestion is not None  # (batch noise is no descent)


def test_a_resume_refused_as_in_use_is_not_told_to_choose_another_folder():
    assert rundir.in_use_line("run", "`run_dir`", resumed=True) == \
        "`run_dir` run is in use by another convolab command; wait for it to end"
    assert rundir.in_use_line("run", "--output").endswith("wait for it to end, or choose another folder")


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
def test_the_in_use_refusal_names_the_holders_pid_and_command(digits_run, tmp_path, capsys):
    """(before: "in use by another convolab command" without saying which: a user with several terminals or a
    forgotten nohup run had to hunt for it)"""
    run = Path(shutil.copytree(digits_run, tmp_path / "run"))
    script = tmp_path / "convolab"  # (run as `python .../convolab train ...`: what the holder's line shows)
    script.write_text("import sys, time\nfrom convolab.training.rundir import claim_run_dir\n"
                      "claim = claim_run_dir(sys.argv[-1])\nprint('held', flush=True)\ntime.sleep(60)\n")
    held = subprocess.Popen([sys.executable, str(script), "train", "lenet5_modern", "--output", "run"],
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert held.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["train", "--epochs", "2", "--resume", str(run)]) == 2
        who = f"(pid {held.pid}: convolab train lenet5_modern --output run)"
        assert f"--resume {run} is in use by another convolab command {who}; wait for it to end" in \
            capsys.readouterr().err
        with pytest.raises(ConfigError, match=re.escape(f"in use by another convolab command {who}; report it")):
            report_runs([run], tmp_path / "report", "convolab report")
    finally:
        held.kill()
        held.wait()


DECODE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from convolab.data.folder import load_image_folder
data = load_image_folder(sys.argv[1], cache_dir=sys.argv[2], loader=sys.argv[3])
print(len(data.train), len(data.test), data.train.labels.tolist(), flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no flock")
@pytest.mark.parametrize("archive", [False, True], ids=["folder", "tar-gz"])
def test_two_commands_given_the_same_new_images_decode_them_once(tmp_path, archive):
    """(before: two commands started on a folder or .tar.gz not yet in the cache both decoded every image, and
    both decompressed the archive, each writing its own copy over the other's)"""
    from convolab.data.folder import _Source

    data = write_png_folder(tmp_path / "imgs", per_class=4)
    if archive:
        with tarfile.open(tmp_path / "imgs.tar.gz", "w:gz") as tar:
            tar.add(data, arcname="imgs")
        data = tmp_path / "imgs.tar.gz"
    cache = tmp_path / "cache"
    cache.mkdir()
    key = _Source(data, cache).fingerprint()
    lock = cache / (f"{key}.lock" if archive else f"{key}-skip0.lock")  # (the archive: its decompression's lock)
    loader = "stream" if archive else "cache"  # (a streamed .tar.gz is decompressed once, not decoded)
    with _atomic.one_at_a_time(lock, lambda: None):  # a third command, decoding: the two must wait for it
        runs = [subprocess.Popen([sys.executable, "-c", DECODE, str(data), str(cache), loader], text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for run in runs:  # each has said it waits
            while "waiting for another convolab command" not in (line := run.stderr.readline()):
                assert line, f"ended without waiting: {run.stdout.read()}"
    outs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] and outs[0][0].split()[:2] == ["12", "12"]
    work = "decompressing" if archive else "decoding 24 images"
    assert sum(work in err for _, err in outs) == 1, outs
    assert not lock.exists()


def _linked_layout(root: Path, kind: str) -> None:
    """A folder of classes a and b with links of one `kind`, as users' folders have them."""
    write_png_folder(root, per_class=4, size=12, classes=("a", "b"), split_dirs=False)
    if kind == "link-to-a-link-to-a-class":
        os.symlink("b", root / "c1")
        os.symlink("c1", root / "c2")
    elif kind == "file-link-through-a-folder-link":
        os.symlink("b", root / "bb")
        os.symlink("../bb/0.png", root / "a" / "x.png")
    elif kind == "hard-link-inside-a-linked-folder":
        os.link(root / "a" / "0.png", root / "a" / "dup.png")
        os.symlink("a", root / "c")


@pytest.mark.parametrize("kind", ["link-to-a-link-to-a-class", "file-link-through-a-folder-link",
                                  "hard-link-inside-a-linked-folder"])
def test_a_tar_lists_what_its_unpacked_folder_lists_through_links_of_links(tmp_path, kind):
    """A link to a link to a class folder was called a link "to nothing", a hard link inside a linked folder was
    dropped, and a file linked through a folder link was refused; the unpacked folder read them all."""
    _linked_layout(tmp_path / "data", kind)
    with tarfile.open(tmp_path / "data.tar", "w") as tar:
        tar.add(tmp_path / "data", arcname=".")
    in_folder, _ = ImageSource(tmp_path / "data").list_images()
    in_tar, _ = ImageSource(tmp_path / "data.tar").list_images()
    assert sorted(posixpath.normpath(n) for n in in_tar) == sorted(in_folder)


def test_a_folder_link_into_a_folder_that_holds_it_is_refused_in_a_tar_as_in_the_folder(tmp_path):
    """A loop (a/loop -> .) read every image of a twice in a tar; the unpacked folder refuses it."""
    write_png_folder(tmp_path / "data", per_class=4, size=12, classes=("a", "b"), split_dirs=False)
    os.symlink(".", tmp_path / "data" / "a" / "loop")
    with tarfile.open(tmp_path / "data.tar", "w") as tar:
        tar.add(tmp_path / "data", arcname=".")
    with pytest.raises(DataError, match="a symbolic link to a folder that holds it"):
        ImageSource(tmp_path / "data").list_images()
    with pytest.raises(DataError, match="loop is a link that leads nowhere in the archive .*a folder that holds it"):
        ImageSource(tmp_path / "data.tar").list_images()


def test_restored_on_failure_keeps_a_dangling_link_it_never_replaced(tmp_path):
    """A link leading nowhere counted as "no file" and was removed when the write failed before replacing it."""
    link = tmp_path / "results.json"
    os.symlink(tmp_path / "nowhere.json", link)
    with pytest.raises(RuntimeError), restored_on_failure([link]):
        raise RuntimeError("failed before any rename")
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "nowhere.json")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_the_skipped_files_are_said_by_the_first_process_of_nproc_only(tmp_path, caplog, monkeypatch):
    """Every process of --nproc reads the data; the skipped files, now said on every load, were said twice."""
    root = write_png_folder(tmp_path / "data", per_class=6, size=12)
    (root / "train" / "a" / "bad.png").write_text("not an image")
    load_data(str(root), skip_bad_images=True, loader="cache")  # (the cache made: the other ranks hit it)
    monkeypatch.setenv("RANK", "1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_data(str(root), skip_bad_images=True, loader="cache")
    assert "skipped" not in caplog.text
    monkeypatch.setenv("RANK", "0")
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_data(str(root), skip_bad_images=True, loader="cache")
    assert "skipped 1 unreadable or mismatched image of" in caplog.text


def test_a_run_stopped_by_a_nan_loss_is_reported_failed_not_interrupted(tmp_path):
    """`compare` called a diverged run "failed: the test loss became nan ...", `report` of the same folder called it
    "interrupted" (a --resume only diverged again): the run folder did not record why it stopped."""
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "mnist5k", "--train-subset", "200", "--test-subset", "100",
                 "--epochs", "2", "--optimizer", "sgd", "--lr", "1e3", "--no-progress", "--output", str(run)]) == 2
    assert read_run(run).status.startswith("failed: the test loss became nan after epoch 2")
    rundir.clear_stop(run)  # (what a resumed fit does first)
    assert read_run(run).status == "interrupted"
