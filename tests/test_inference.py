"""`evaluate` scores each image as `predict` reads it: the whole image at the model's size for a run trained
on images held in memory (other data of any size resized to it), the centre crop at the weights' own crop
and resampling for a run of streamed photos or published weights."""
from __future__ import annotations

import numpy as np
import torch
from conftest import write_png_folder
from PIL import Image

from convolab.cli import main
from convolab.data import load_data
from convolab.data.decode import read_image
from convolab.training.checkpoint_data import load_data_for
from convolab.training.inference import (
    evaluate_checkpoint,
    in_units,
    load_trained_model,
    predict_targets,
)


def _photos(root, sizes, classes=("a", "b", "c")):
    rng = np.random.default_rng(1)
    paths = []
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            pixels = np.clip(40 + 80 * k + rng.integers(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            paths.append(root / cls / f"{i}.png")
            Image.fromarray(pixels).save(paths[-1])
    return paths


def test_evaluate_of_other_photos_of_mixed_sizes_agrees_with_predict(tmp_path, capsys):
    write_png_folder(tmp_path / "train-data", per_class=8, size=12)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(tmp_path / "train-data"), "--epochs", "1", "--batch-size",
                 "8", "--no-progress", "--output", str(run)]) == 0
    paths = _photos(tmp_path / "other", [(12, 12), (40, 30), (17, 23)])  # mixed sizes: refused before
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other"), "--output", str(tmp_path / "ev")]) == 0
    loaded = load_trained_model(run / "best.pt")
    data = load_data_for(loaded.checkpoint, str(tmp_path / "other"), whole=True)
    report = evaluate_checkpoint(loaded, data)
    predicted = [p[0][0][0] for p in predict_targets(loaded, paths, topk=1)]
    truth = [p.parent.name for p in paths]
    assert report.count == len(paths)
    assert report.top1 == sum(p == t for p, t in zip(predicted, truth)) / len(paths)


def test_streamed_evaluation_takes_the_weights_crop_and_resampling(tmp_path):
    paths = _photos(tmp_path / "photos" / "train", [(300, 200), (220, 260)], classes=("x", "y"))
    _photos(tmp_path / "photos" / "test", [(300, 200), (220, 260)], classes=("x", "y"))
    data = load_data(str(tmp_path / "photos"), loader="stream", workers=0).decoded_as(64)
    for crop_pct, interpolation in ((0.875, "bilinear"), (224 / 232, "bicubic"), (1.0, "bicubic")):
        evaluated = data.decoded_as(crop_pct=crop_pct, interpolation=interpolation)
        images, _, index = next(evaluated.eval_batches(evaluated.train, 8))
        for row, i in enumerate(index.tolist()):
            path = tmp_path / "photos" / evaluated.train.locations[i]
            expected = read_image(path, center_crop_size=64, crop_pct=crop_pct, interpolation=interpolation)
            assert torch.equal(images[row], expected), (crop_pct, interpolation, path)
    assert paths  # (the files the crops came from)


def test_evaluate_takes_skip_bad_images_as_its_message_says(tmp_path, capsys):
    """One unreadable photo among good ones: the line names --skip-bad-images, which evaluate and features take."""
    write_png_folder(tmp_path / "train-data", per_class=8, size=12)
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", str(tmp_path / "train-data"), "--epochs", "1", "--batch-size",
                 "8", "--no-progress", "--output", str(run)]) == 0
    paths = _photos(tmp_path / "other", [(12, 12), (20, 16)])
    paths[0].write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other"), "--output", str(tmp_path / "ev")]) == 2
    assert "pass --skip-bad-images" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other"), "--output", str(tmp_path / "ev"),
                 "--skip-bad-images", "--json"]) == 0
    assert f'"images": {len(paths) - 1}' in capsys.readouterr().out
    assert main(["features", str(run), "--out", str(tmp_path / "f.npz"), "--skip-bad-images"]) == 0


def test_predict_prints_a_numeric_output_to_a_hundredth_of_its_columns_spread():
    """A column of values near 1e9 with a spread of 30 prints 1000000015.0 (before: 4 significant digits, 1e+09
    for every image); ages of spread 3 print to 0.01."""
    assert in_units(0.5, 1e9, 30) == "1000000015.0" and in_units(0.2, 6, 3) == "6.60"
