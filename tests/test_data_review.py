"""Data edges found by this round's review: a class every image of which --skip-bad-images skipped is left out
(as an empty class folder is) rather than kept as an output no image teaches, on a cold cache and a warm one."""
from __future__ import annotations

import logging

import pytest
from conftest import write_png_folder

from convolab.data.folder import load_image_folder
from convolab.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def test_a_class_whose_every_image_was_skipped_is_left_out_with_a_warning(tmp_path, caplog):
    root = write_png_folder(tmp_path / "d", per_class=4, size=8, classes=("a", "b", "c"))
    for png in (root / "train" / "b").glob("*.png"):
        png.write_bytes(b"not an image")
    for png in (root / "test" / "b").glob("*.png"):
        png.write_bytes(b"not an image")
    for attempt in ("cold", "warm"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            data = load_image_folder(root, skip_bad_images=True, cache_dir=tmp_path / "cache")
        assert data.classes == ["a", "c"], attempt
        assert sorted(set(data.train.labels.tolist())) == [0, 1] and sorted(set(data.test.labels.tolist())) == [0, 1]
        assert (data.train.images[data.train.labels == 1].float().mean()
                > data.train.images[data.train.labels == 0].float().mean())  # c (brighter) is label 1
        assert "every image of class b was skipped: it is left out" in caplog.text, attempt


def test_two_classes_of_which_one_is_all_skipped_leave_one_class_which_is_refused(tmp_path):
    root = write_png_folder(tmp_path / "d", per_class=3, size=8, classes=("a", "b"))
    for png in root.glob("*/b/*.png"):
        png.write_bytes(b"")
    with pytest.raises(DataError, match="has one class \\(a\\); a classifier needs two or more"):
        load_image_folder(root, skip_bad_images=True, cache_dir=tmp_path / "cache")


def test_streamed_unreadable_images_are_named_up_to_ten_then_counted(tmp_path, caplog):
    root = write_png_folder(tmp_path / "p", per_class=14, size=40, classes=("a", "b"))
    for png in (root / "test" / "b").glob("*.png"):
        png.write_bytes(b"garbage\n")
    data = load_image_folder(root, loader="stream", workers=0, skip_bad_images=True)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        for _ in range(2):  # (a second pass names nothing again)
            scored = sum(len(labels) for _, labels, _ in data.eval_batches(data.test, 8))
    assert scored == 14 and len(data.skipped) == 14
    named = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped unreadable image")]
    assert len(named) == 10 == len(set(named))
    assert caplog.text.count("further unreadable images of") == 1


# ----- the training engine's review ------------------------------------------------------------------------
def test_the_crop_padding_is_an_eighth_of_the_size_the_crop_is_made_at():
    """The crop is made at the model's input size (after resizing): its padding is an eighth of that, so CIFAR
    at 224 px shifts by up to 28 px (4 px of the 32-px image), not by 4 px (half a pixel of it)."""
    import torch

    from convolab.data.augment import BatchTransform
    from convolab.training.build import augment_for

    assert augment_for("auto", (3, 32, 32), 0.0, "none", 32).crop_padding == 4
    aug = augment_for("auto", (3, 32, 32), 0.0, "none", 224)
    assert aug.crop_padding == 28 and aug.flip
    transform = BatchTransform(3, (224, 224), (0.5,) * 3, (0.25,) * 3, aug)
    x = torch.zeros(256, 3, 32, 32, dtype=torch.uint8)
    x[:, :, 16, 16] = 255
    out = transform(x, train=True, generator=torch.Generator().manual_seed(0))
    rows = torch.stack([(o[0] == o[0].max()).nonzero()[0] for o in out])[:, 0]
    assert rows.max() - rows.min() > 40  # (±28 px at 224; ±4 px before)
    assert augment_for("crop", (1, 8, 8), 0.0, "none", 28).crop_padding == 4  # (digits at 28 px: was 1)


def test_a_step_of_one_image_a_process_is_refused_for_batchnorm1d_naming_the_batch_to_give():
    from convolab import create_model
    from convolab.errors import FieldError
    from convolab.training.forecast import check_batch_statistics

    bn = create_model("lenet5_bn")
    with pytest.raises(FieldError, match=r"6 leaves each process 1 image a step, .* give --batch-size 8 or more "
                                         r"\(2 a process\)"):
        check_batch_statistics(bn, "lenet5_bn", 6, 4)
    check_batch_statistics(bn, "lenet5_bn", 8, 4)
    check_batch_statistics(create_model("lenet5_modern"), "lenet5_modern", 1, 1)  # (no BatchNorm1d: a batch of 1)
