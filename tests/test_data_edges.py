"""Image folders read as their layout says, or refused: split folders of other names, split folders beside
other folders, an unwritable cache, empty class folders on a cache hit, streamed unreadable images, grey
palette images, and --train-subset/--test-subset of streamed folders."""
from __future__ import annotations

import errno
import logging
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import write_png_folder
from PIL import Image

import convolab._atomic as atomic
import convolab.data.folder as folder
from convolab.cli import main
from convolab.data import ImageData, StreamingImageData, load_data
from convolab.data.decode import decode_image, grey_or_colour, majority_mode, sample_headers
from convolab.data.folder import load_image_folder
from convolab.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def _split_folder(root: Path, train: str = "train", test: str = "test", per_class: int = 4) -> Path:
    write_png_folder(root, per_class=per_class, size=8, classes=("a", "b", "c"), mode="L")
    (root / "train").rename(root / train)
    (root / "test").rename(root / test)
    return root


def _tar(folder_path: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz" if target.name.endswith(".gz") else "w") as tar:
        tar.add(folder_path, arcname=".")
    return target


# ----- 1. the layout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("train,test", [("training", "testing"), ("Training", "Testing"), ("train", "validation")])
def test_the_usual_spellings_of_split_folders_are_splits(tmp_path, train, test):
    data = load_image_folder(_split_folder(tmp_path / "d", train, test))
    assert data.classes == ["a", "b", "c"] and (len(data.train), len(data.test)) == (12, 12)


def test_training_validation_and_testing_keep_testing_unseen(tmp_path, caplog):
    root = _split_folder(tmp_path / "d", "training", "testing")
    shutil.copytree(root / "testing", root / "validation")
    with caplog.at_level(logging.INFO, logger="convolab"):
        data = load_image_folder(root)
    assert (len(data.train), len(data.test), len(data.unseen_test)) == (12, 12, 12)
    assert "validation/ scores each epoch and testing/ (12 images) is kept unseen" in caplog.text


@pytest.mark.parametrize("as_tar", [False, True])
def test_split_folders_of_other_names_are_refused_naming_the_split_names(tmp_path, as_tar):
    root = _split_folder(tmp_path / "d", "train_set", "test_set")
    source = _tar(root, tmp_path / "d.tar") if as_tar else root
    with pytest.raises(DataError, match=r"every image lies two folders down \(e\.g\. .*test_set/a/0\.png\), so its "
                                        r"top folders \(test_set/, train_set/\) would be read as classes; convolab "
                                        r"reads top folders as splits only when they are named train/, test/ or val/"):
        load_image_folder(source)


def test_class_folders_of_subfolders_are_classes_as_torchvision_reads_them(tmp_path):
    for cls in ("cat", "dog"):
        write_png_folder(tmp_path / "d" / cls, per_class=3, size=8, classes=("indoor", "outdoor"), split_dirs=False)
    data = load_image_folder(tmp_path / "d", val_fraction=0.5)
    assert data.classes == ["cat", "dog"] and len(data.train) + len(data.test) == 12


def test_split_folders_beside_another_folder_are_refused_naming_it(tmp_path):
    root = _split_folder(tmp_path / "d")
    (root / "unlabeled").mkdir()
    Image.new("L", (8, 8)).save(root / "unlabeled" / "0.png")
    with pytest.raises(DataError, match=r"holds split folders \(test/, train/\) beside other folders \(unlabeled/\), "
                                        r"which would all be read as classes; move unlabeled/ out of it"):
        load_image_folder(root)


def test_a_class_named_train_beside_other_classes_is_a_class(tmp_path):
    write_png_folder(tmp_path / "d", per_class=10, size=8, classes=("boat", "car", "train"), split_dirs=False)
    assert load_image_folder(tmp_path / "d").classes == ["boat", "car", "train"]


# ----- 2. a cache folder that cannot be written ----------------------------------------------------------
def _read_only_cache(monkeypatch, cache: Path) -> None:
    """mkstemp in `cache` fails as on a read-only file system (tests run as root: chmod stops nothing)."""
    real = atomic.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == cache.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(Path(dir) / "x.tmp"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic, "tempfile", SimpleNamespace(mkstemp=mkstemp))


def test_an_unwritable_image_cache_warns_once_and_the_images_are_used_unsaved(tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    _read_only_cache(monkeypatch, cache)
    monkeypatch.setattr(folder, "_UNWRITABLE", set())
    root = write_png_folder(tmp_path / "d", per_class=4, size=8, mode="L")
    with caplog.at_level(logging.WARNING, logger="convolab"):
        first = load_image_folder(root, cache_dir=cache)
        again = load_image_folder(root, cache_dir=cache)
    assert isinstance(first, ImageData) and (len(first.train), len(first.test)) == (12, 12)
    assert torch.equal(first.train.images, again.train.images)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot write the image cache in {cache} (Read-only file "
                                                         "system); going on without it"), warnings
    assert "CONVOLAB_CACHE" in warnings[0] and list(cache.iterdir()) == []
    caplog.clear()
    monkeypatch.setattr(folder, "_UNWRITABLE", set())
    monkeypatch.setenv("RANK", "1")  # under --nproc, rank 0 says it for every process
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_image_folder(root, cache_dir=cache)
    assert not caplog.records


def test_an_unwritable_cache_for_a_compressed_archive_is_one_line_naming_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    _read_only_cache(monkeypatch, cache)
    archive = _tar(write_png_folder(tmp_path / "d", per_class=4, size=8, mode="L"), tmp_path / "d.tar.gz")
    with pytest.raises(DataError) as caught:
        load_image_folder(archive, cache_dir=cache, loader="stream", workers=0)
    assert str(caught.value).startswith(f"cannot write the decompressed copy of {archive} into the cache folder "
                                        f"{cache} (Read-only file system)")
    assert "CONVOLAB_CACHE" in str(caught.value) and "truncated" not in str(caught.value)


def test_a_truncated_compressed_archive_is_still_said_to_be_truncated(tmp_path):
    archive = _tar(write_png_folder(tmp_path / "d", per_class=40, size=16), tmp_path / "d.tar.gz")
    whole = load_image_folder(archive, cache_dir=tmp_path / "c1", loader="cache")  # (the listing reads it all)
    assert len(whole.train) == 120
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:len(data) * 3 // 4])
    with pytest.raises(DataError, match=r"cut\.tar\.gz cannot be read to the end .*truncated or corrupt"):
        load_image_folder(cut, cache_dir=tmp_path / "c2", loader="stream", workers=0)


# ----- 3. an empty class folder, cache or no cache -------------------------------------------------------
def test_an_empty_class_folder_is_refused_after_a_cached_run_too(tmp_path):
    root = write_png_folder(tmp_path / "d", per_class=4, size=8, mode="L")
    load_image_folder(root, cache_dir=tmp_path / "cache")  # cached
    (root / "train" / "eight").mkdir()
    (root / "test" / "eight").mkdir()
    with pytest.raises(DataError, match=r"class folder .*/d/test/eight holds no image"):
        load_image_folder(root, cache_dir=tmp_path / "cache")
    data = load_image_folder(root, cache_dir=tmp_path / "cache", skip_bad_images=True)
    assert data.classes == ["a", "b", "c"]


# ----- 4. streamed images that cannot be decoded ---------------------------------------------------------
def _broken_photos(root: Path) -> Path:
    write_png_folder(root, per_class=6, size=40, classes=("a", "b"))
    for png in (root / "test" / "b").glob("*.png"):
        png.write_bytes(b"garbage\n")
    return root


def test_a_streamed_unreadable_image_is_said_without_a_buffers_repr(tmp_path):
    data = load_image_folder(_broken_photos(tmp_path / "p"), loader="stream", workers=0)
    with pytest.raises(DataError) as caught:
        list(data.eval_batches(data.test, 4))
    assert "cannot be decoded (not an image format PIL recognises)" in str(caught.value)
    assert "object at 0x" not in str(caught.value) and "BytesIO" not in str(caught.value)


def test_a_skipped_streamed_image_is_named_once_in_a_run_of_three_epochs(tmp_path, capsys, caplog):
    root = _broken_photos(tmp_path / "p")
    with caplog.at_level(logging.INFO, logger="convolab"):
        assert main(["train", "lenet5_modern", "--data", str(root), "--loader", "stream", "--workers", "0",
                     "--image-size", "28", "--epochs", "3", "--batch-size", "4", "--skip-bad-images",
                     "--no-progress", "--output", str(tmp_path / "run")]) == 0
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped unreadable image")]
    assert len(skipped) == 6 and len(set(skipped)) == 6, skipped
    assert all("(not an image format PIL recognises)" in s for s in skipped), skipped


# ----- 5. grey palette images ----------------------------------------------------------------------------
def test_a_grey_palette_png_and_gif_among_grey_images_are_grey(tmp_path):
    root = write_png_folder(tmp_path / "d", per_class=4, size=8, mode="L")
    grey = Image.open(root / "train" / "a" / "0.png")
    grey.convert("P").save(root / "train" / "a" / "0.png")
    grey.save(root / "train" / "a" / "0b.gif")
    data = load_image_folder(root)
    assert data.image_shape == (1, 8, 8) and len(data.train) == 13
    assert torch.equal(data.train.images[0, 0], torch.from_numpy(np.array(grey)))  # the same grey levels


def test_a_palette_image_is_grey_only_when_the_colours_it_uses_are(tmp_path):
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    colour = grey.convert("RGB")
    colour.putpixel((3, 3), (255, 0, 0))
    assert grey_or_colour(grey.convert("P")) == "L" and grey_or_colour(grey.convert("PA")) == "L"
    assert grey_or_colour(colour.convert("P", palette=Image.Palette.ADAPTIVE)) == "RGB"
    png = tmp_path / "p.png"
    grey.convert("P").save(png, transparency=0)  # a transparent entry: still the grey levels
    array, mode = decode_image(png.read_bytes())
    assert mode == "L" and np.array_equal(array, np.asarray(grey))


def test_streamed_grey_gifs_are_streamed_grey(tmp_path):
    write_png_folder(tmp_path / "d", per_class=3, size=8, mode="L")
    files = sorted((tmp_path / "d").rglob("*.png"))
    for png in files:
        Image.open(png).save(png.with_suffix(".gif"))
        png.unlink()
    gifs = sorted(str(p) for p in (tmp_path / "d").rglob("*.gif"))
    assert majority_mode(sample_headers(lambda name: Path(name).read_bytes(), gifs)) == "L"
    data = load_image_folder(tmp_path / "d", loader="stream", workers=0)
    assert isinstance(data, StreamingImageData) and data.image_shape[0] == 1


# ----- 6. --train-subset and --test-subset of streamed data ----------------------------------------------
def _numbered_folder(root: Path) -> Path:
    """3 classes of 10 training and 5 test images, each one flat grey level that names it."""
    level = 0
    for split, count in (("train", 10), ("test", 5)):
        for cls in ("a", "b", "c"):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (16, 16), level).save(root / split / cls / f"{i}.png")
                level += 5
    return root


def test_streamed_subsets_are_the_images_the_cached_subsets_are(tmp_path):
    root = _numbered_folder(tmp_path / "n")
    cached = load_data(str(root), loader="cache").per_class_subsets(7, 4)
    streamed = load_data(str(root), loader="stream", workers=0).per_class_subsets(7, 4)
    assert isinstance(streamed, StreamingImageData) and (len(streamed.train), len(streamed.test)) == (7, 4)
    for memory, files in ((cached.train, streamed.train), (cached.test, streamed.test)):
        levels = [np.asarray(Image.open(root / loc))[0, 0] for loc in files.locations]
        assert levels == memory.images[:, 0, 0, 0].tolist() and torch.equal(memory.labels, files.labels)
    assert streamed.channel_stats() != load_data(str(root), loader="stream", workers=0).channel_stats()


def test_a_streamed_run_of_subsets_is_evaluated_on_its_test_subset(tmp_path, capsys):
    root = write_png_folder(tmp_path / "n", per_class=5, size=16)
    assert main(["train", "lenet5_modern", "--data", str(root), "--loader", "stream", "--workers", "0",
                 "--image-size", "28", "--train-subset", "8", "--test-subset", "5", "--batch-size", "4",
                 "--epochs", "1", "--no-progress", "--output", str(tmp_path / "run")]) == 0
    trained = capsys.readouterr().out
    assert "(8 train / 5 test images, 3 classes)" in trained
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert ": 5 test images" in out, out
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert f"top-1 accuracy: {best['best_acc']:.4f}" in out, (out, best["best_acc"])


def _report_sigint(items, resize):
    """A stand-in for the cache pool's decoding: what each worker does with Ctrl-C."""
    import signal

    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    return [(location, np.zeros((1, 1), np.uint8) + ignored, "L") for location, _ in items]


def test_the_cache_pools_workers_leave_ctrl_c_to_the_main_process(monkeypatch):
    # A worker interrupted while it held the pool's result queue left the others and the main process waiting
    # forever (seen under --nproc 2 on CIFAR-10's 60,000 JPEGs).
    monkeypatch.setattr(folder, "PARALLEL_DECODE_MIN", 1)
    monkeypatch.setattr(folder, "DECODE_CHUNK", 2)
    monkeypatch.setattr(folder, "_decode_chunk", _report_sigint)
    monkeypatch.setattr(folder.os, "cpu_count", lambda: 2)
    source = SimpleNamespace(read_all=lambda wanted: ((name, b"") for name in sorted(wanted)))
    results = list(folder._decode_all(source, {f"{i}.png" for i in range(8)}, None))
    assert len(results) == 8 and all(int(array[0, 0]) == 1 for _, array, _ in results)


def test_a_folder_given_is_read_from_its_top_and_a_lone_test_split_is_no_training_set(tmp_path):
    # torchvision's ImageFolder reads d/0/day1/*.png as one class `0`; the shared folder was read past
    for day in ("day1", "day2"):
        write_png_folder(tmp_path / "d" / "0" / day, per_class=3, size=8, classes=("x",), split_dirs=False)
    with pytest.raises(DataError, match="one class"):
        load_image_folder(tmp_path / "d")
    test_only = write_png_folder(tmp_path / "t" / "test", per_class=4, size=8, classes=("a", "b"), split_dirs=False)
    with pytest.raises(DataError, match=r"yields 0 training and 8 test images; .*add a train/ folder"):
        load_image_folder(test_only.parent)
    # a lone train/ is the training split, the test images held out by --val-fraction, as before
    train_only = write_png_folder(tmp_path / "r" / "train", per_class=10, size=8, classes=("a", "b"),
                                  split_dirs=False)
    data = load_image_folder(train_only.parent, val_fraction=0.5)
    assert (len(data.train), len(data.test)) == (10, 10)


def test_two_spellings_of_one_split_and_an_image_beside_the_splits_are_one_line_each(tmp_path):
    root = _split_folder(tmp_path / "d")
    shutil.copytree(root / "test", root / "testing")
    with pytest.raises(DataError, match=r"holds test/, testing/, spellings of one split; keep one"):
        load_image_folder(root)
    shutil.rmtree(root / "testing")
    Image.new("L", (8, 8)).save(root / "sample.png")
    with pytest.raises(DataError, match=r"/d/sample.png lies beside the split folders \(test/, train/\); move it"):
        load_image_folder(root)
