"""Review of the Python API's type and value checks: a size or depth that is not a whole number given to
count_macs/summary, load_data's image_size and a targets string, arguments of the wrong type (create_model(None),
Trainer("lenet5"), Trainer.resume(run, foo=1), count_params("x")), a model of the user's own that does not fit
the data's channels, and torch's internals in summary's lines. Each fails on the code before the review (the test
says what it did)."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from conftest import write_png_folder
from PIL import Image
from torch import nn

import convolab
from convolab.analysis import count_macs, count_params, summary
from convolab.cli import main
from convolab.data import load_data
from convolab.errors import ConfigError, FieldError
from convolab.training import TrainConfig, Trainer
from convolab.training.forecast import check_batch_statistics, estimate_cost

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

CPU = torch.device("cpu")
LENET5_MACS = 416_520  # at (1, 28, 28)


@pytest.fixture(scope="module")
def lenet5() -> nn.Module:
    return convolab.create_model("lenet5")


# ----- 7. sizes and depths that are not whole numbers -------------------------------------------------------
@pytest.mark.parametrize("size", [(1.5, 28.9, 28.9), (1.0, 28, 28), "1,28,28", b"\x01\x1c\x1c", (1, True, 28), None,
                                  5, (1, "28", 28), (1, float("nan"), 28), (1, 0, 28), (1, -28, 28)])
def test_count_macs_and_summary_refuse_a_size_that_is_not_whole_numbers(lenet5, size):
    # (before: (1.5, 28.9, 28.9) counted as (1, 28, 28), 416520; "1,28,28" a ValueError of int(','))
    for call in (lambda: count_macs(lenet5, size), lambda: summary(lenet5, size)):
        with pytest.raises(ConfigError, match=r"^input_size must be .*got"):
            call()


def test_count_macs_and_summary_take_numpy_and_torch_integers(lenet5):
    assert count_macs(lenet5, (np.int64(1), np.int32(28), 28)) == LENET5_MACS
    assert count_macs(lenet5, np.array([1, 28, 28])) == LENET5_MACS
    assert count_macs(lenet5, torch.Size([1, 28, 28])) == LENET5_MACS
    assert summary(lenet5, [1, np.int64(28), 28]).input_size == (1, 28, 28)
    assert all(type(v) is int for v in summary(lenet5, [1, np.int64(28), 28]).input_size)
    assert len(summary(lenet5, (1, 28, 28), depth=np.int64(1)).rows) == 2


@pytest.mark.parametrize("depth", [1.5, True, "2", 0, [1]])
def test_summary_refuses_a_depth_that_is_not_a_whole_number_from_1(lenet5, depth):
    # (before: 1.5 and True taken, "2" a bare TypeError about '<')
    with pytest.raises(ConfigError, match=r"^depth must be a whole number >= 1 .*got"):
        summary(lenet5, (1, 28, 28), depth=depth)


# ----- 8. load_data's image_size and targets ------------------------------------------------------------------
@pytest.mark.parametrize("size", [-3, 0, 2.5, True, "8"])
def test_load_data_refuses_an_image_size_that_is_not_a_positive_whole_number(tmp_path, size):
    # (before: -3 "no readable image in FOLDER", 0 silently ignored, 2.5 a TypeError from inside PIL)
    folder = write_png_folder(tmp_path / "imgs", per_class=2)
    with pytest.raises(FieldError, match=r"^image_size must be a"):
        load_data(str(folder), image_size=size)
    assert load_data(str(folder), image_size=np.int64(8)).image_shape == (3, 8, 8)


def _labels_csv(folder) -> str:
    rows = [[f"{i}.png", ("cat", "dog")[i % 2], str(3 + i), "test" if i % 4 == 3 else "train"] for i in range(8)]
    for r in rows:
        Image.new("L", (8, 8), 20 * int(r[2])).save(folder / r[0])
    path = folder / "labels.csv"
    path.write_text("\n".join(",".join(r) for r in [["image", "species", "age", "split"], *rows]) + "\n")
    return str(path)


def test_load_data_takes_a_string_of_targets_as_one_column_and_refuses_other_types(tmp_path):
    # (before: targets="species" iterated: "--targets names 's' is not a column")
    path = _labels_csv(tmp_path)
    one = load_data(path, targets="species")
    listed = load_data(path, targets=["species"])
    assert list(one.columns) == list(listed.columns) == ["species"]
    assert torch.equal(one.train.labels, listed.train.labels)
    assert list(load_data(path, targets="species", inputs="image").columns) == ["species"]
    for bad in (5, ["species", 3], {"species": 1}):
        with pytest.raises(FieldError, match=r"^targets must be a column name or a list of them"):
            load_data(path, targets=bad)
    with pytest.raises(FieldError, match=r"^inputs must be a column name or a list of them"):
        load_data(path, inputs=[None])


# ----- 9. arguments of the wrong type --------------------------------------------------------------------------
@pytest.mark.parametrize("name", [None, 5, b"lenet5", ["lenet5"]])
def test_create_model_refuses_a_name_that_is_not_a_string(name):
    # (before: AttributeError "'NoneType' object has no attribute 'lower'" from _registry.py)
    for create in (convolab.create_model, convolab.models.create_model):
        with pytest.raises(ConfigError, match=r"^model name must be a string .*got"):
            create(name)


def test_a_trainer_refuses_a_config_that_is_not_a_train_config():
    # (before: AttributeError "'str' object has no attribute 'output'" from engine.py)
    with pytest.raises(ConfigError, match=r"^Trainer takes a TrainConfig, got 'lenet5'; give "
                                          r"Trainer\(TrainConfig\(model='lenet5'"):
        Trainer("lenet5")
    with pytest.raises(ConfigError, match=r"^Trainer takes a TrainConfig, got \{"):
        Trainer({"model": "lenet5"})


def test_trainer_resume_names_an_option_that_is_not_a_train_config_field(tmp_path):
    # (before: AttributeError "'TrainConfig' object has no attribute 'foo'" from config.py)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig("lenet5", output=str(run)).to_dict()))
    with pytest.raises(TypeError, match=r"^Trainer.resume\(\) got an unexpected keyword argument 'foo': not a "
                                        r"TrainConfig field"):
        Trainer.resume(run, foo=1)
    with pytest.raises(TypeError, match=r"'epoch': not a TrainConfig field; did you mean epochs\?"):
        Trainer.resume(run, epoch=3)


@pytest.mark.parametrize("model", ["x", None, 5, torch.zeros(3)])
def test_counting_and_summary_refuse_what_is_not_a_module(model):
    # (before: AttributeError "'str' object has no attribute 'parameters'" from counting.py)
    for call in (lambda: count_params(model), lambda: count_macs(model, (1, 28, 28)),
                 lambda: summary(model, (1, 28, 28))):
        with pytest.raises(ConfigError, match=r"^model must be a torch nn.Module, got"):
            call()


# ----- 10. a model of the user's own that does not fit the data's channels -------------------------------------
def rgb_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_a_given_model_that_does_not_fit_the_datas_channels_is_one_config_error(tmp_path):
    # (before: a raw RuntimeError through torch/utils/flop_counter.py from forecast.estimate_cost)
    output = tmp_path / "own"
    line = r"^input 1x28x28 does not fit Sequential: Given groups=1, weight of size \[8, 3, 3, 3\]"
    with pytest.raises(ConfigError, match=line):
        Trainer(TrainConfig("lenet5", epochs=1, output=str(output), progress=False), model=rgb_net())
    assert not output.exists()
    with pytest.raises(ConfigError, match=line.replace("28", "32")):  # (at an --image-size: an AttributeError,
        # "'Sequential' object has no attribute 'forward_outputs'")
        Trainer(TrainConfig("lenet5", epochs=1, output=str(output), progress=False, image_size=32), model=rgb_net())
    assert not output.exists()
    with pytest.raises(ConfigError, match=line):  # (the same line as count_macs says)
        count_macs(rgb_net(), (1, 28, 28))
    with pytest.raises(ConfigError, match=line):
        estimate_cost(rgb_net(), 1, 28, CPU)
    with pytest.raises(ConfigError, match=line):  # (a batch of one image: probed for its BatchNorm layers)
        check_batch_statistics(rgb_net(), "mine", 1, 1, 1, 28, CPU)
    with pytest.raises(ConfigError, match=r"^lenet5 expects 3-channel input, got 1x28x28"):
        estimate_cost(convolab.create_model("lenet5", in_chans=3), 1, 28, CPU)


# ----- 11. torch's internals in summary's lines ------------------------------------------------------------------
def _cli_error(argv: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 2
    return err.getvalue()


def test_summary_of_a_model_too_large_to_build_says_so_in_plain_words():
    # (before: "empty(): argument 'size' failed to unpack ... Overflow when unpacking long long")
    for size in ("99999999999", "1000000000"):
        line = _cli_error(["summary", "lenet5", "--model-option", f"img_size={size}"])
        assert (f"cannot build lenet5 with {{'img_size': {size}}}: a layer would hold more values than a tensor can "
                "(its size overflows); give smaller options") in line
        assert "Overflow" not in line and "overflowed" not in line and "empty()" not in line


def test_summary_at_a_size_the_model_was_not_built_for_names_the_img_size_that_fits():
    # (before: "too small ... a and b must have same reduction dim, but got [1, 400] X [3136, 120]")
    line = _cli_error(["summary", "lenet5", "--model-option", "img_size=64", "--input-size", "1,28,28"])
    assert ("input 1x28x28 does not fit lenet5, whose layers are built for 1x64x64: build it for 28 px with "
            "img_size=28 (--model-option img_size=28)") in line
    assert "reduction dim" not in line
    with pytest.raises(ConfigError, match=r"build it for 40 px with img_size=40"):
        summary(convolab.create_model("lenet5", img_size=64), (1, 40, 40))
    with pytest.raises(ConfigError, match=r"too small for lenet5 \(default size 1x64x64\)"):  # (none fits 8 px)
        summary(convolab.create_model("lenet5", img_size=64), (1, 8, 8))
