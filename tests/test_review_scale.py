"""Faults found in this session's review (scale, option combinations, input shapes, and the left-alone list):
each test fails on the code before its fix."""
from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_folder

import convolab
from convolab.cli import build_parser, main, recorded_threads
from convolab.cli.train import resumed_config
from convolab.data.archive import printable, shown
from convolab.data.decode import read_image
from convolab.errors import ConfigError
from convolab.models import create_model
from convolab.training import rundir
from convolab.training.checkpoint_data import load_data_for
from convolab.training.inference import (
    confusion_figure,
    load_trained_model,
    ordinal_suffix,
    predict_targets,
    squashed_size,
)


def test_a_claim_made_while_another_command_checks_the_folder_is_not_refused(tmp_path):
    """`in_use` (a command asking whether a run folder is being written) holds a shared lock for an instant; a
    claim in that instant was refused as "in use" though nobody held the folder. It now tries again."""
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / rundir.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the other command's check, under way
    release = threading.Timer(0.03, lambda: fcntl.flock(fd, fcntl.LOCK_UN))
    release.start()
    try:
        claim = rundir.claim_run_dir(run)
        assert claim is not None
        claim.release()
    finally:
        release.join()
        os.close(fd)


def test_predict_reads_an_image_as_the_runs_image_size_cache_did(tmp_path):
    """A run trained with --image-size on an image folder saw its files squashed by PIL as they were cached; predict
    read the file whole and resized it on the batch (antialiased, in float): 0.3 grey levels apart on average, and
    19 of CIFAR-10's 10,000 test images changed their top-1 between `evaluate` and `predict`. Now the same resize,
    for the checkpoint and its ONNX export alike."""
    data = write_png_folder(tmp_path / "pngs", per_class=4, size=32)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(data), "--image-size", "28", "--epochs", "1",
                 "--batch-size", "4", "--no-progress", "--output", str(run)]) == 0
    loaded = load_trained_model(run)
    assert squashed_size(loaded.checkpoint) == (28, 28)
    cached = load_data_for(loaded.checkpoint, str(data))  # the images as training and evaluate see them
    files = sorted((data / "test").rglob("*.png"))
    seen = torch.stack([read_image(f, squash=(28, 28)) for f in files])  # (colour: the model greys them)
    stored = {tuple(x.flatten().tolist()) for x in cached.test.images}
    assert seen.shape[1] == 3 and {tuple(x.flatten().tolist()) for x in seen} == stored  # the pixels training saw
    with torch.no_grad():
        expected = loaded.model(loaded.transform(seen)).softmax(1).max(1).values
    predicted = [top[0][1] for top, _ in predict_targets(loaded, files, topk=1)]
    assert predicted == pytest.approx(expected.tolist(), abs=1e-6)


def test_the_confusion_pictures_ordinals_are_english():
    """(before: "every 12nd class named", "every 13rd", "every 21th" on 1,300-2,300 classes)"""
    assert [f"{n}{ordinal_suffix(n)}" for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th", "112th"]


def test_a_class_name_with_a_tab_or_a_newline_is_written_on_one_line_and_drawn_without_a_warning():
    """(before: a tab in a class name made matplotlib warn of its missing glyph, with a source line, and a newline
    broke `evaluate`'s table of classes in two rows)"""
    assert shown("tab\there") == "tab\\there" and shown("line\nbreak") == "line\\nbreak"
    assert shown("café 猫\u00a0\u200d") == "café 猫\u00a0\u200d" and shown("a\udcffb") == "a\\xffb"
    assert printable("tab\there") == "tab\there"  # (files of results keep the name: CSV and JSON quote it)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = confusion_figure(np.eye(3, dtype=np.int64), ["tab\there", "line\nbreak", "plain"], "t")
        figure.savefig(io.BytesIO(), format="png")
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["0: tab?here", "1: line?break", "2: plain"]


def test_a_run_trained_with_compile_resumes_without_it_from_the_command_line(tmp_path):
    """`--compile` is among the options `--resume` takes, but only turned it on: `--no-compile` was an unknown
    argument, and a resumed compiled run compiled again (a machine without a C++ compiler could not continue it)."""
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "compile": True}))  # as `--compile` writes it
    args = build_parser().parse_args(["train", "--resume", str(run), "--epochs", "2", "--no-compile"])
    config, changes = resumed_config(args)
    assert config.compile and changes == {"epochs": 2, "compile": False}
    assert not config.resumed_with(changes).compile


def test_a_recipe_on_another_optimizer_says_its_rate_once_and_blames_no_option_the_user_did_not_give(
        tmp_path, caplog):
    """(before: `--recipe fast --optimizer adam --epochs 1` warned "--nesterov is ignored" and "--warmup-epochs 2 is
    over half of the 1 epochs", neither given, and said nothing of the recipe's SGD rate of 0.4, at which Adam
    diverged: test accuracy 0.1003)"""
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["train", "lenet5_modern", "--data", "digits", "--recipe", "fast", "--optimizer", "adam", "--epochs",
                 "1", "--batch-size", "128", "--train-subset", "256", "--no-progress",
                 "--output", str(tmp_path / "r")]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "--recipe fast's lr 0.4 is its sgd's: --optimizer adam trains at it unless --lr is given (its usual rate: "
        "0.002)",
        "--warmup-epochs 2 (fast's) is over half of the 1 epoch: the warm-up takes 1 step, 0.5 epochs"]  # (recipe's)
    caplog.clear()
    assert main(["train", "lenet5_modern", "--data", "digits", "--recipe", "fast", "--optimizer", "adam", "--lr",
                 "0.002", "--epochs", "1", "--batch-size", "128", "--train-subset", "256", "--no-progress",
                 "--output", str(tmp_path / "r2")]) == 0
    assert [r.getMessage() for r in caplog.records if "lr" in r.getMessage()] == []
    caplog.clear()  # the usual rate is the model's registered one where it has one (the sigmoid LeNet-5's 0.01)
    assert main(["train", "lenet5", "--data", "digits", "--recipe", "fast", "--optimizer", "adamw", "--epochs", "1",
                 "--batch-size", "128", "--train-subset", "256", "--no-progress",
                 "--output", str(tmp_path / "r3")]) == 0
    said = caplog.records[0].getMessage()
    assert "--optimizer adamw trains at it unless --lr is given (its usual rate: 0.01)" in said


def test_a_subset_larger_than_its_split_is_said_once(tmp_path, caplog):
    """(before: `--train-subset 5000 --test-subset 5000` on the digits trained on all 1,438 / 359 without a word,
    and config.json recorded 5000)"""
    caplog.set_level(logging.WARNING, logger="convolab")
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--train-subset", "5000",
                 "--test-subset", "5000", "--no-progress", "--output", str(tmp_path / "r")]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "--train-subset 5000 is more than the 1438 training images: all of them are used",
        "--test-subset 5000 is more than the 359 test images: all of them are used"]


def test_predict_prints_each_image_as_it_is_scored_and_keeps_them_when_a_later_file_fails(tmp_path, capsys):
    """(before: the lines came only once every image was scored, and a file failing to decode after 10,000 others
    lost all of them: exit 2 and nothing printed)"""
    data = write_png_folder(tmp_path / "pngs", per_class=2, size=28, mode="L", split_dirs=False)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    good = sorted(data.rglob("*.png"))[:3]
    cut = tmp_path / "cut.png"  # a PNG whose header opens and whose pixels end early
    cut.write_bytes(good[0].read_bytes()[:60])
    capsys.readouterr()
    assert main(["predict", str(run), *map(str, good), str(cut)]) == 2
    said = capsys.readouterr()
    assert [line.split()[0] for line in said.out.splitlines()] == list(map(str, good))
    assert said.err.strip().startswith(f"convolab predict: error: image {cut} is not a readable image")


@pytest.mark.parametrize("name, options, words", [
    ("resnet20", {"drop_rate": "x"}, "resnet20's option drop_rate takes a number in [0, 1], got 'x'"),
    ("resnet20", {"drop_rate": None}, "resnet20's option drop_rate takes a number in [0, 1], got None"),
    ("resnet20", {"drop_rate": 1.5}, "resnet20's option drop_rate takes a number in [0, 1], got 1.5"),
    ("resnet18", {"stem_width": -4}, "stem_width takes a whole number of at least 1, got -4"),
    ("resnet18", {"stem_width": 0}, "stem_width takes a whole number of at least 1, got 0"),
    ("resnet50", {"stem_width": 1.5}, "stem_width takes a whole number of at least 1, got 1.5"),
])
def test_model_options_behind_a_builders_keywords_are_checked_in_one_line(name, options, words):
    """(before: `stem_width=-4` a traceback from torch, exit 1; `drop_rate=x` "'<' not supported between instances
    of 'str' and 'int'")"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (stem_width=0 warned of zero-element tensors, with a source line)
        with pytest.raises(ConfigError) as raised:
            create_model(name, **options)
    assert words in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("name, size", [("googlenet_tv", 224), ("inception_v3", 299)])
def test_torchvisions_input_transform_takes_colour_images_only(name, size):
    """(before: a grey batch broadcast to three channels and was scored; torchvision's own model fails on it)"""
    model = create_model(name, transform_input=True).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 1000)
        with pytest.raises(RuntimeError, match="transform_input takes 3-channel RGB images, got 1 channels"):
            model(torch.zeros(1, 1, size, size))


def test_a_val_fraction_on_data_with_a_test_split_holds_out_validation_images(tmp_path, caplog):
    """(at first: `--val-fraction 0.5` on a folder with a test/ split, or on a named set, trained on the data's own
    split without a word, config.json recording 0.5; then a warning said it was not used; now it holds out half of
    the training images to validate on, and the test split is scored once at the end: tests/test_validation_split)"""
    split = write_png_folder(tmp_path / "split", per_class=4, size=28, mode="L")
    flat = write_png_folder(tmp_path / "flat", per_class=4, size=28, mode="L", split_dirs=False)
    caplog.set_level(logging.WARNING, logger="convolab")
    digits = ("--train-subset", "40", "--test-subset", "20")
    for k, (data, said, more) in enumerate(((split, True, ()), ("digits", True, digits), (flat, False, ()))):
        caplog.clear()
        assert main(["train", "lenet5_modern", "--data", str(data), "--val-fraction", "0.5", "--epochs", "1",
                     "--batch-size", "4", *more, "--no-progress", "--output", str(tmp_path / f"run{k}")]) == 0
        assert [r.getMessage() for r in caplog.records] == []
        assert (tmp_path / f"run{k}" / "test.json").is_file() == said


@pytest.mark.slow  # (10 s: two commands of their own; the threads a command sets: test_platform, by default)
def test_a_resumed_command_trains_with_the_threads_the_run_recorded(tmp_path):
    """`convolab train --resume` left to choose its threads by the load (one where another process was busy, two
    on the idle machine before) summed in another order than the run it continues: 0.27 against 0.29 test accuracy
    for the run left alone. It takes the threads config.json records (`resolved.threads`)."""
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--train-subset", "64",
                 "--test-subset", "20", "--batch-size", "32", "--no-progress", "--output", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    config["resolved"]["threads"] = 1  # as a run that trained on one thread records it
    (run / "config.json").write_text(json.dumps(config))
    assert recorded_threads(str(run)) == 1 and recorded_threads(str(tmp_path)) == 1
    experiment = tmp_path / "experiment" / "seed-0" / "arm-1" / "runs" / "lenet5_modern"  # (reproduce's layout)
    experiment.mkdir(parents=True)
    (experiment / "config.json").write_text(json.dumps(config))
    assert recorded_threads(str(tmp_path / "experiment")) == 1
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(Path(convolab.__file__).parents[1])
    done = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(run), "--epochs", "2",
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["resolved"]["threads"] == 1


def test_a_streamed_grey_runs_colour_file_scores_in_predict_as_in_evaluate(tmp_path):
    """The streaming workers decode every file in the run's mode (PIL's grey for a grey run): predict's centre crop
    must too. (This session's first change decoded it in the file's own colour mode: 7e-6 away from evaluate.)"""
    from PIL import Image

    data = write_png_folder(tmp_path / "grey", per_class=4, size=28, mode="L")
    colour = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    Image.fromarray(colour).save(data / "test" / "a" / "0.png")  # a colour file among the grey ones
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(data), "--loader", "stream", "--workers", "0", "--epochs",
                 "1", "--batch-size", "4", "--no-progress", "--output", str(run)]) == 0
    loaded = load_trained_model(run)
    streamed = load_data_for(loaded.checkpoint, str(data))
    evaluated = streamed.decoded_as(int(loaded.checkpoint["image_size"][0]))
    images = torch.cat([batch[0] for batch in evaluated.eval_batches(evaluated.test, 64)])
    with torch.no_grad():
        expected = loaded.model(loaded.transform(images)).softmax(1)
    files = [data / location for location in evaluated.test.locations]
    for file, row in zip(files, expected):
        (top, _), = predict_targets(loaded, [file], topk=len(loaded.classes))
        scored = torch.tensor([dict(top)[c] for c in loaded.classes])
        assert (scored - row).abs().max() < 1e-6, file
