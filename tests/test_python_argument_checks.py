"""A tester's mistaken arguments to the Python API, each one ConfigError (or DataError) line naming the argument in
backquotes and what to give, not an internal error from deep inside: the exporters given a model's name, a bare
size, a fractional batch or an input of other channels; finetune_trainer given a model's name for its `config`;
extract_features given a data set's name for its `data`; save_features given a folder; with_validation's
`fraction` named as such; a labels CSV's unknown target said in grammar. Each fails on the code before (the test
says what it did)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import convolab
from convolab.data import load_data
from convolab.errors import ConfigError, DataError
from convolab.export import export_onnx, export_program, export_torchscript
from convolab.finetune import extract_features, finetune_trainer, pretrained_trainer, save_features

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

EXPORTERS = {"onnx": (export_onnx, "model.onnx"), "torchscript": (export_torchscript, "model.torchscript.pt"),
             "pt2": (export_program, "model.pt2")}


@pytest.fixture(scope="module")
def resnet20():
    return convolab.create_model("resnet20").eval()


def _nothing_written(folder) -> None:
    assert list(folder.iterdir()) == []


# ----- 1. the exporters ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_an_export_of_a_models_name_is_refused_as_summary_refuses_it(fmt, tmp_path):
    # (before: AttributeError: 'str' object has no attribute 'cpu')
    export, name = EXPORTERS[fmt]
    with pytest.raises(ConfigError, match=r"^model must be a torch nn\.Module, got str 'resnet20'; build one with "
                                          r"convolab\.create_model\(NAME\)$"):
        export("resnet20", tmp_path / name, (3, 32, 32))
    _nothing_written(tmp_path)


@pytest.mark.parametrize("size", [32, "3,32,32", (3, 32), (3, 32, 32, 1), (1, 3, 32, 32), (3.0, 32, 32),
                                  (3, 0, 32), (3, -32, 32), (3, True, 32), None])
def test_an_export_refuses_an_input_size_that_is_not_three_positive_ints(resnet20, tmp_path, size):
    # (before: 32 a TypeError "'int' object is not iterable", (3.0, 32, 32) torch.randn's TypeError, (3, 32) a line
    # naming input_size bare, (3, True, 32) taken as 3x1x32)
    for export, name in EXPORTERS.values():
        with pytest.raises(ConfigError, match=r"^`input_size` must be a tuple of 3 positive ints, \(channels, "
                                              r"height, width\) of one image without the batch, got .*; e\.g\. "
                                              r"\(3, 32, 32\)$"):
            export(resnet20, tmp_path / name, size)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("batch_size", [2.5, True, "2", None])
def test_an_export_refuses_a_batch_size_that_is_not_a_positive_int(resnet20, tmp_path, batch_size):
    # (before: 2.5 and "2" torch.randn's TypeError, None a TypeError of '<=', True torch.randn's TypeError; 0 was
    # refused already)
    for export, name in EXPORTERS.values():
        with pytest.raises(ConfigError, match=r"^`batch_size` must be a positive integer, got "):
            export(resnet20, tmp_path / name, (3, 32, 32), batch_size=batch_size)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_an_export_at_other_channels_than_the_models_says_so_in_one_line(resnet20, tmp_path, fmt):
    # (before: torch's RuntimeError "expected input[1, 1, 32, 32] to have 3 channels, but got 1 channels instead")
    export, name = EXPORTERS[fmt]
    with pytest.raises(ConfigError) as caught:
        export(resnet20, tmp_path / name, (1, 32, 32))
    assert str(caught.value) == ("resnet20 expects 3-channel input, got 1x32x32 (default size 3x32x32); give an "
                                 "`input_size` it takes")
    _nothing_written(tmp_path)


def test_an_export_of_lenet5_at_another_size_says_the_size_it_is_built_for(tmp_path):
    # (before: torch's "mat1 and mat2 shapes cannot be multiplied")
    lenet5 = convolab.create_model("lenet5").eval()
    with pytest.raises(ConfigError, match=r"^input 1x32x32 does not fit lenet5, whose layers are built for 1x28x28: "
                                          r"build it for 32 px with img_size=32 .*; or give an `input_size` it takes$"):
        export_torchscript(lenet5, tmp_path / "model.pt", (1, 32, 32))
    _nothing_written(tmp_path)


# ----- 2. fine-tuning and features -----------------------------------------------------------------------------
def test_finetune_trainer_given_a_models_name_for_config_asks_for_a_train_config(tmp_path):
    # (before: AttributeError: 'str' object has no attribute 'model_options')
    with pytest.raises(ConfigError, match=r"^`config` must be a TrainConfig, got str 'lenet5'; give "
                                          r"TrainConfig\(data=\.\.\.\) of the data to fine-tune on"):
        finetune_trainer(tmp_path / "best.pt", "lenet5")
    with pytest.raises(ConfigError, match=r"^`config` must be a TrainConfig, got str 'lenet5'; give "
                                          r"TrainConfig\(model=NAME, data=\.\.\.\)"):
        pretrained_trainer("lenet5")  # (before: AttributeError: 'str' object has no attribute 'model')


@pytest.mark.parametrize("data", ["digits", None])
def test_extract_features_given_a_name_for_data_asks_for_loaded_data(tmp_path, data):
    # (before: AttributeError: 'str' object has no attribute 'unseen_test', after the checkpoint was read)
    advice = r"load_data\('digits'\)" if data else r"load_data\(NAME_OR_FOLDER\)"
    with pytest.raises(ConfigError, match=rf"^`data` must be loaded data, got {type(data).__name__} .*; give "
                                          rf"{advice}"):
        extract_features(tmp_path / "no-run", data)


def test_save_features_to_a_folder_is_refused_naming_path_before_anything_is_written(tmp_path):
    # (before: a bare IsADirectoryError naming a temporary file)
    arrays = {"train_features": np.zeros((2, 3), np.float32)}
    with pytest.raises(ConfigError) as caught:
        save_features(tmp_path, arrays)
    assert str(caught.value) == (f"`path` {tmp_path} is a directory; give a file name such as "
                                 f"{tmp_path / 'features.npz'}")
    with pytest.raises(ConfigError, match=r"^the folder of `path` .* does not exist; create .* first"):
        save_features(tmp_path / "missing" / "features.npz", arrays)  # (before: FileNotFoundError of a temporary)
    _nothing_written(tmp_path)


# ----- 3. data -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [2, -0.5, 1.0, "0.1"])
def test_with_validation_names_its_fraction(fraction):
    # (before: "test_fraction must be a number in [0, 1), got 2", an argument with_validation does not have)
    with pytest.raises(ConfigError, match=r"^`fraction` must be a number in \[0, 1\), got "):
        load_data("digits").with_validation(fraction)


def test_a_labels_csv_target_that_is_no_column_is_said_in_one_sentence(tmp_path):
    # (before: "`targets` names 'agee' is not a column of ...")
    rows = [[f"{i}.png", str(i % 2), str(3 + i)] for i in range(8)]
    for r in rows:
        Image.new("L", (8, 8), 20 * int(r[2])).save(tmp_path / r[0])
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(",".join(r) for r in [["image", "digit", "age"], *rows]) + "\n")
    with pytest.raises(DataError) as caught:
        load_data(str(path), targets=["digit", "agee"])
    assert str(caught.value) == (f"`targets` names 'agee', which is not a column of {path} (its columns: image, "
                                 "digit, age)")
    with pytest.raises(DataError, match=r"^`inputs` names 'picture', which is not a column of "):
        load_data(str(path), inputs=["picture"])
