"""Data sets: the embedded digits, image folders and archives, the cache and bad input."""
from __future__ import annotations

import tarfile

import pytest
import torch
from conftest import write_png_folder

from convolab.data import load_data
from convolab.data.folder import load_image_folder
from convolab.errors import DataError


def test_mnist5k_is_4000_train_1000_test_stratified_and_deterministic():
    a, b = load_data("mnist5k"), load_data("mnist5k")
    assert a.image_shape == (1, 28, 28) and a.train.images.dtype == torch.uint8
    assert (len(a.train), len(a.test)) == (4000, 1000)
    assert a.train.labels.bincount().tolist() == [400] * 10
    assert a.test.labels.bincount().tolist() == [100] * 10
    assert torch.equal(a.test.images, b.test.images)
    assert int(a.train.images.max()) == 255  # real pixel range, not rescaled floats


def test_digits_has_1797_images_of_8x8():
    d = load_data("digits")
    assert d.image_shape == (1, 8, 8) and len(d.train) + len(d.test) == 1797
    assert d.classes == [str(i) for i in range(10)]


def test_unknown_data_set_suggests_the_closest_name():
    with pytest.raises(DataError, match="did you mean mnist5k"):
        load_data("mnist5")


def test_missing_torchvision_set_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"not found under .*cifar-10-batches-py.*--download"):
        load_data("cifar10", data_dir=str(tmp_path))


def test_image_folder_with_train_and_test_splits(tmp_path):
    write_png_folder(tmp_path / "shapes", per_class=5, size=10)
    d = load_data(str(tmp_path / "shapes"))
    assert d.classes == ["a", "b", "c"]
    assert (len(d.train), len(d.test)) == (15, 15) and d.image_shape == (3, 10, 10)


def test_image_folder_without_splits_holds_out_a_stratified_fraction(tmp_path):
    write_png_folder(tmp_path / "flat", per_class=10, split_dirs=False)
    d = load_image_folder(tmp_path / "flat", val_fraction=0.2)
    assert (len(d.train), len(d.test)) == (24, 6)
    assert d.test.labels.bincount().tolist() == [2, 2, 2]


def test_tar_gz_of_a_folder_reads_the_same_as_the_folder_and_is_cached(tmp_path):
    root = write_png_folder(tmp_path / "src" / "set", per_class=4, size=8)
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="set")
    folder, packed = load_data(str(root)), load_data(str(archive))
    assert torch.equal(folder.train.images, packed.train.images)
    assert torch.equal(folder.test.labels, packed.test.labels)
    cached = load_data(str(archive))  # second read comes from the uint8 cache
    assert torch.equal(cached.train.images, packed.train.images)


def test_an_archive_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    from convolab.data import folder

    root = write_png_folder(tmp_path / "src" / "set", per_class=4, size=8)
    archive = tmp_path / "set.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname="set")
    hashed = []
    real_hash = folder.hash_archive
    monkeypatch.setattr(folder, "hash_archive", lambda path: hashed.append(path) or real_hash(path))
    first = load_image_folder(archive, cache_dir=tmp_path / "cache")
    again = load_image_folder(archive, cache_dir=tmp_path / "cache")  # the same file: one stat, no read
    assert len(hashed) == 1 and torch.equal(first.train.images, again.train.images)
    with tarfile.open(archive, "w") as tar:  # replaced by other content: hashed and decoded afresh
        tar.add(root / "train", arcname="set/train")
        tar.add(root / "train", arcname="set/test")
    changed = load_image_folder(archive, cache_dir=tmp_path / "cache")
    assert len(hashed) == 2 and torch.equal(changed.test.images, changed.train.images)
    assert len(list((tmp_path / "cache" / "fingerprints").iterdir())) == 2


def test_corrupt_image_is_named_and_can_be_skipped(tmp_path):
    root = write_png_folder(tmp_path / "bad", per_class=4)
    (root / "train" / "b" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"broken\.png cannot be decoded.*--skip-bad-images"):
        load_data(str(root))
    d = load_data(str(root), skip_bad_images=True)
    assert len(d.train) == 12


def test_grayscale_among_rgb_and_odd_sizes_are_named(tmp_path):
    from PIL import Image

    root = write_png_folder(tmp_path / "mixed", per_class=4, size=8)
    Image.new("L", (8, 8)).save(root / "train" / "a" / "grey.png")
    Image.new("RGB", (9, 8)).save(root / "train" / "c" / "wide.png")
    with pytest.raises(DataError, match=r"grey\.png is mode L .*\(and 1 more\)") as err:
        load_data(str(root))
    assert "--image-size" not in str(err.value)  # (the line names the grey one: resizing does not change modes)
    (root / "train" / "a" / "grey.png").unlink()
    with pytest.raises(DataError, match=r"wide\.png is 9x8 while most images are 8x8.*--image-size N to resize"):
        load_data(str(root))


def test_empty_class_folder_is_named(tmp_path):
    root = write_png_folder(tmp_path / "empty", per_class=3)
    (root / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"class folder .*zebra holds no image"):
        load_data(str(root))


def test_folder_without_images_and_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "nothing" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_data(str(tmp_path / "nothing"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="neither an image folder nor"):
        load_data(str(tmp_path / "notes.txt"))


@pytest.mark.slow
def test_shared_cifar10_tar_reads_50000_train_and_10000_test(cifar_tar):
    d = load_data(str(cifar_tar))
    assert (len(d.train), len(d.test), d.image_shape) == (50000, 10000, (3, 32, 32))
    assert d.classes[0] == "airplane" and d.train.labels.bincount().tolist() == [5000] * 10


def test_image_size_resizes_photos_of_mixed_sizes_as_they_are_decoded(tmp_path):
    from PIL import Image

    root = write_png_folder(tmp_path / "photos", per_class=3, size=20)
    Image.new("RGB", (37, 23), (200, 10, 10)).save(root / "train" / "a" / "wide.png")
    with pytest.raises(DataError, match="--image-size N"):
        load_data(str(root))
    data = load_data(str(root), image_size=16)
    assert data.image_shape == (3, 16, 16) and len(data.train) == 10
