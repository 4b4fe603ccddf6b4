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
    with pytest.raises(DataError, match=r"not found under .*cifar-10-batches-py.*`download`"):
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
    with pytest.raises(DataError, match=r"broken\.png cannot be decoded.*`skip_bad_images`"):
        load_data(str(root))
    d = load_data(str(root), skip_bad_images=True)
    assert len(d.train) == 12


def test_grey_among_colour_is_read_in_colour_and_colour_among_grey_and_odd_sizes_are_named(tmp_path):
    from PIL import Image

    root = write_png_folder(tmp_path / "mixed", per_class=4, size=8)
    Image.new("L", (8, 8), 77).save(root / "train" / "a" / "grey.png")
    Image.new("RGB", (9, 8)).save(root / "train" / "c" / "wide.png")
    with pytest.raises(DataError, match=r"wide\.png is 9x8 while most images are 8x8.*`image_size` N to resize"):
        load_data(str(root))
    (root / "train" / "c" / "wide.png").unlink()
    data = load_data(str(root))  # as torchvision's loader reads it: grey in 3 channels
    grey = data.train.images[(data.train.images == 77).flatten(1).all(1)]
    assert len(data.train) == 13 and grey.shape == (1, 3, 8, 8)
    greys = write_png_folder(tmp_path / "greys", per_class=4, size=8, mode="L")
    Image.new("RGB", (8, 8), (200, 0, 0)).save(greys / "train" / "a" / "red.png")
    with pytest.raises(DataError, match=r"red\.png is in colour \(RGB\) while most images are grey \(L\).*"
                                        r"`skip_bad_images`"):
        load_data(str(greys))


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
    with pytest.raises(DataError, match="neither an image folder, a .tar/.tar.gz archive nor a labels CSV"):
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
    with pytest.raises(DataError, match="`image_size` N"):
        load_data(str(root))
    data = load_data(str(root), image_size=16)
    assert data.image_shape == (3, 16, 16) and len(data.train) == 10


def test_hidden_folders_and_empty_folders_inside_a_class_are_not_data(tmp_path):
    from PIL import Image

    root = write_png_folder(tmp_path / "f", per_class=4, size=8, split_dirs=False)
    for hidden in (root / ".ipynb_checkpoints", root / "a" / ".ipynb_checkpoints", root / "__MACOSX" / "a"):
        hidden.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(hidden / "copy.png")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / "a" / "thumbs").mkdir()  # empty, inside a class folder: not a class
    data = load_image_folder(root, cache_dir=tmp_path / "cache", val_fraction=0.25)
    assert data.classes == ["a", "b", "c"] and len(data.train) + len(data.test) == 12
    (root / "d").mkdir()  # empty, beside the class folders: a class without images
    with pytest.raises(DataError, match=r"class folder .*/f/d holds no image"):
        load_image_folder(root, cache_dir=tmp_path / "cache2", val_fraction=0.25)


def test_an_image_loose_in_a_split_folder_is_named_not_read_as_a_layout_without_splits(tmp_path):
    from PIL import Image

    root = write_png_folder(tmp_path / "f", per_class=3, size=8)
    Image.new("RGB", (8, 8)).save(root / "train" / "preview.png")
    with pytest.raises(DataError, match=r"^train/preview\.png is not inside a class folder of train/"):
        load_image_folder(root, cache_dir=tmp_path / "cache")


def test_test_classes_the_training_split_lacks_are_refused(tmp_path):
    root = write_png_folder(tmp_path / "f", per_class=3, size=8, classes=("Cat", "Dog"))
    (root / "test" / "Cat").rename(root / "test" / "cat")
    with pytest.raises(DataError, match="the test split has classes the training split lacks: cat "):
        load_image_folder(root, cache_dir=tmp_path / "cache")


def test_with_train_val_and_test_val_scores_the_run_and_test_is_kept_unseen(tmp_path, caplog):
    root = write_png_folder(tmp_path / "f", per_class=3, size=8)
    write_png_folder(tmp_path / "v", per_class=2, size=8, split_dirs=False)
    (tmp_path / "v").rename(root / "val")
    caplog.set_level("INFO", logger="convolab")
    for loader in ("cache", "stream"):
        caplog.clear()
        data = load_image_folder(root, cache_dir=tmp_path / "cache", loader=loader)
        assert (len(data.train), len(data.test), len(data.unseen_test)) == (9, 6, 9)  # val/'s 6; test/'s 9 kept
        assert "val/ scores each epoch and test/ (9 images) is kept unseen, scored once at the end" in caplog.text


def test_scoring_takes_every_image_of_an_unsplit_folder_and_one_class_will_do(tmp_path):
    root = write_png_folder(tmp_path / "f", per_class=5, size=8, classes=("a", "b"), split_dirs=False)
    for loader in ("cache", "stream"):
        data = load_image_folder(root, cache_dir=tmp_path / "cache", loader=loader, whole=True)
        assert (len(data.train), len(data.test)) == (0, 10)
    write_png_folder(tmp_path / "one", per_class=5, size=8, classes=("a",), split_dirs=False)
    assert len(load_image_folder(tmp_path / "one", cache_dir=tmp_path / "cache", whole=True).test) == 5
    split = write_png_folder(tmp_path / "s", per_class=2, size=8, classes=("a", "b"))
    assert (len(load_image_folder(split, cache_dir=tmp_path / "cache", whole=True).test)) == 4  # its test/


def test_sixteen_bit_and_float_grey_images_are_scaled_to_eight_bits_not_clipped(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from convolab.data.decode import decode_image, read_image

    ramp = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    array, mode = decode_image(buf.getvalue())
    assert mode == "L" and array.tolist() == [[0, 100, 255]]
    (tmp_path / "x.png").write_bytes(buf.getvalue())
    # (read as the cache reads it, grey: the batch transform repeats it for a colour model, as in training)
    assert read_image(tmp_path / "x.png")[:, 0].tolist() == [[0, 100, 255]]
    buf = io.BytesIO()
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F").save(buf, "TIFF")
    assert decode_image(buf.getvalue())[0].tolist() == [[0, 128, 255]]
    for grey in ("LA", "1"):  # grey variants decode as grey, beside L images
        buf = io.BytesIO()
        Image.new(grey, (3, 1)).save(buf, "PNG")
        assert decode_image(buf.getvalue())[1] == "L"


def test_a_folder_named_like_a_built_in_set_is_named_in_a_warning(tmp_path, monkeypatch, caplog):
    (tmp_path / "digits" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert len(load_data("digits").classes) == 10
    assert "`data` digits names the built-in data set; the folder digits here is not read (give ./digits" \
        in caplog.text


def test_a_failed_download_is_one_line_that_does_not_ask_for_download(tmp_path, monkeypatch):
    """torchvision's error lists each mirror tried over several lines; without a network it said
    "pass --download" to a user who had."""
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a, got:\n<urlopen error>\n")

    monkeypatch.setattr(tvd, "MNIST", offline)
    with pytest.raises(DataError) as err:
        load_data("mnist", data_dir=str(tmp_path), download=True)
    line = str(err.value)
    assert "\n" not in line and "--download" not in line, line
    assert line.startswith(f"mnist could not be downloaded into {tmp_path / 'MNIST' / 'raw'} (Error downloading "
                           "train-images-idx3-ubyte.gz; no network?)"), line
