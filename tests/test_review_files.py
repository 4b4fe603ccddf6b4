"""Faults found in this session's review (the image files users have, the upper layers read line by line, tests
that could not fail, and the left-alone list): each test fails on the code before its fix."""
from __future__ import annotations

import pytest

from convolab.errors import FieldError
from convolab.training import build
from convolab.training.config import TrainConfig


def test_an_image_size_the_model_cannot_take_is_refused_before_the_data_are_read(tmp_path, monkeypatch):
    """`train lenet5 --image-size 64` on the CIFAR-10 tar decoded all 60,000 images at 64 px (42 s) before the
    size was refused; the named model is now probed first."""
    def read(*args, **kwargs):
        raise AssertionError("the data were read before the size was checked")

    monkeypatch.setattr(build, "load_run_data", read)
    config = TrainConfig(model="lenet5", data="digits", image_size=64, epochs=1, output=str(tmp_path / "run"))
    with pytest.raises(FieldError, match=r"64 does not fit lenet5 \(its layers are built for 28 px, at most 31 px\)"):
        build.build_run(config)
