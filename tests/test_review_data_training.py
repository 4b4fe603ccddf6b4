"""Faults a code review of convolab/data and convolab/training proved by runs: a streamed pass none of whose
images could be read; a warm cache that skipped the listing's refusals and `--loader auto`'s choice;
`Trainer.resume` overrides a resumed run cannot take; statistics by centre crop and as a grey model sees colour
images; subset counts below 1; random erasing without a generator; a labels CSV's split words; one top-1."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png_folder

import convolab.training.engine as engine
from convolab import create_model
from convolab.data import load_data, per_class_subset
from convolab.data.augment import AugmentConfig, BatchTransform
from convolab.data.folder import load_image_folder
from convolab.data.labels_csv import load_labels_csv
from convolab.errors import ConfigError, DataError, FieldError
from convolab.training import TrainConfig, Trainer
from convolab.training.inference import EvaluationReport
from convolab.training.lr_find import lr_range_test

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def streamed(tmp_path, unreadable_split: str):
    root = write_png_folder(tmp_path / "d", per_class=8, size=16, classes=("a", "b"))
    for png in (root / unreadable_split).glob("*/*.png"):
        png.write_bytes(b"not a png at all")
    return root


def config(tmp_path, root, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": str(root), "loader": "stream", "workers": 0,
                          "skip_bad_images": True, "batch_size": 4, "epochs": 1, "progress": False,
                          "normalize": "none", "output": str(tmp_path / "run"), **changes})


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_streamed_pass_none_of_whose_images_could_be_read_is_one_line_and_leaves_no_run(tmp_path, split):
    root = streamed(tmp_path, split)
    what = "training" if split == "train" else "test"
    with pytest.raises(DataError, match=f"no {what} image of `data` .* could be read \\(16 unreadable files"):
        Trainer(config(tmp_path, root)).fit()  # (it printed 0.0000 figures, or divided by zero in the bar)
    assert not (tmp_path / "run" / "config.json").exists()  # the same command may start again there


def test_lr_find_on_training_images_none_of_which_could_be_read_stops_with_one_line(tmp_path):
    root = streamed(tmp_path, "train")
    with pytest.raises(DataError, match="no training image of `data`"):  # (it looped for ever)
        lr_range_test(config(tmp_path, root), steps=5)


def test_a_warm_cache_still_refuses_an_empty_class_folder(tmp_path):
    root = write_png_folder(tmp_path / "d", per_class=4, size=8, classes=("cat", "dog"))
    (root / "train" / "bird").mkdir()
    cache = tmp_path / "cache"
    load_image_folder(root, cache_dir=cache, whole=True)  # an evaluation caches the folder, tolerating it
    with pytest.raises(DataError, match="class folder .*bird holds no image"):
        load_image_folder(root, cache_dir=cache)
    assert load_image_folder(root, cache_dir=cache, skip_bad_images=True).classes == ["cat", "dog"]


def test_loader_auto_streams_large_images_though_a_loader_cache_run_cached_them(tmp_path):
    root = write_png_folder(tmp_path / "big", per_class=3, size=160, classes=("a", "b"))
    cache = tmp_path / "cache"
    assert type(load_image_folder(root, cache_dir=cache, loader="cache")).__name__ == "ImageData"
    assert type(load_image_folder(root, cache_dir=cache)).__name__ == "StreamingImageData"  # as with no cache
    assert type(load_image_folder(root, cache_dir=cache, loader="cache")).__name__ == "ImageData"


def test_trainer_resume_refuses_an_option_a_resumed_run_cannot_change_and_keeps_its_config(tmp_path):
    run = tmp_path / "run"
    Trainer(TrainConfig("lenet5", data="digits", epochs=1, batch_size=256, progress=False, output=str(run))).fit()
    before = (run / "config.json").read_text()
    with pytest.raises(FieldError, match="batch_size cannot change when a run is resumed"):
        Trainer.resume(run, epochs=2, batch_size=7)
    assert (run / "config.json").read_text() == before
    assert Trainer.resume(run, epochs=2).config.epochs == 2  # (epochs may change)


def test_streamed_statistics_follow_the_centre_crop(tmp_path):
    root = tmp_path / "s"
    write_png_folder(root, per_class=3, size=64, classes=("a", "b"))
    data = load_image_folder(root, loader="stream", workers=0)
    data.channel_stats()
    cropped = data.decoded_as(crop_pct=0.3).channel_stats()
    fresh = load_image_folder(root, loader="stream", workers=0, cache_dir=tmp_path / "c2").decoded_as(crop_pct=0.3)
    assert cropped == fresh.channel_stats()


def test_a_grey_model_on_colour_images_is_normalized_by_the_grey_images_statistics(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, cls in enumerate(("red", "green", "blue")):  # each class bright in its own channel
            (tmp_path / "colour" / split / cls).mkdir(parents=True)
            for i in range(6):
                pixels = rng.integers(0, 60, (28, 28, 3), dtype=np.uint8)
                pixels[..., k] += 180
                Image.fromarray(pixels).save(tmp_path / "colour" / split / cls / f"{i}.png")
    data = load_data(str(tmp_path / "colour"))
    grey_model = create_model("lenet5", num_classes=3, in_chans=1)  # e.g. a digits model fine-tuned on photos
    trainer = Trainer(TrainConfig("lenet5", data=str(tmp_path / "colour"), batch_size=6, progress=False,
                                  output=str(tmp_path / "run")), data=data, model=grey_model)
    x = trainer.run.eval_transform(data.train.images)
    assert x.shape[1] == 1
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-4  # (-0.36 and 2.2 before)


@pytest.mark.parametrize("count", [0, -1])
def test_a_subset_of_fewer_than_one_image_is_refused(count):
    with pytest.raises(ConfigError, match=f"a subset of {count} images"):  # (-1 hung; 0 kept every image)
        per_class_subset(torch.tensor([0, 0, 1, 1]), count)
    with pytest.raises(ConfigError, match="a subset of 0 images"):
        load_data("digits").per_class_subsets(0, None)
    assert len(load_data("digits").per_class_subsets(None, 10).test) == 10


def test_random_erasing_alone_without_a_generator_says_so():
    transform = BatchTransform(3, (8, 8), (0.5,) * 3, (0.25,) * 3, AugmentConfig(erasing=0.5))
    with pytest.raises(ValueError, match="training augmentation needs a generator"):  # (an AttributeError)
        transform(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), train=True)


def test_a_labels_csv_split_column_takes_the_split_folders_words(tmp_path):
    root = write_png_folder(tmp_path / "imgs", per_class=4, size=8, classes=("a", "b"), split_dirs=False)
    rows = [f"{cls}/{i}.png,{cls},{'testing' if i == 3 else 'training'}" for cls in ("a", "b") for i in range(4)]
    (root / "labels.csv").write_text("image,label,split\n" + "\n".join(rows) + "\n")
    data = load_labels_csv(root / "labels.csv")
    assert (len(data.train), len(data.test)) == (6, 2)


def test_one_top1_for_evaluate_and_a_labels_csv_evaluation():
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    labels = logits.argmax(1).clone()
    labels[0] = (labels[0] + 1) % 4
    report = EvaluationReport.of(logits, labels, ["a", "b", "c", "d"])
    assert report.top1 == 2 / 3  # the float training's correct / images gives (not float32's 0.6666666865)
    assert json.dumps(report.top1) == json.dumps(2 / 3)


def test_resuming_a_run_in_a_read_only_folder_names_resume_not_output(tmp_path, monkeypatch):
    run = tmp_path / "run"
    Trainer(TrainConfig("lenet5", data="digits", epochs=1, batch_size=256, progress=False, output=str(run))).fit()
    monkeypatch.setattr(engine.os, "access", lambda path, mode: Path(path) != run)  # (a read-only mount)
    with pytest.raises(ConfigError, match=f"`run_dir` {run} is not writable, and a resumed run writes its "
                                          "checkpoints there: make it writable, or copy the run folder"):
        Trainer.resume(run, epochs=2)
