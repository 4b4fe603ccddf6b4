"""An export's metadata edited or damaged (TorchScript's convolab.json, the strings ExportMeta.from_strings reads from
an ONNX file): an ExportError of one line naming the file and the field, not a raw JSONDecodeError, AttributeError or
UnicodeDecodeError, nor metadata of a NaN mean, a zero std, an image size of ('a',) or a crop mode 'bogus' returned
as if sound. (A comparison's and an experiment's records, and a safetensors config.json not UTF-8: rows of
tests/test_bad_inputs.py.)"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from convolab.export import ExportError, ExportMeta, export_torchscript, read_torchscript_meta
from convolab.models import create_model

META = ExportMeta("lenet5", tuple("0123456789"), 1, (28, 28), (0.5,), (0.25,))


@pytest.fixture(scope="module")
def torchscript(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ts") / "m.torchscript.pt"
    export_torchscript(create_model("lenet5").eval(), path, (1, 28, 28), meta=META)
    return path


def with_metadata(source: Path, out: Path, text: str | bytes) -> Path:
    """`source` with its convolab.json replaced by `text` (as an editor saves it)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("extra/convolab.json"):
                data = text.encode() if isinstance(text, str) else text
            zout.writestr(info, data)
    return out


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("text, words", [
    ('{"classes": "[\\"0\\"', "its metadata (convolab.json) is not UTF-8 JSON (Unterminated string"),
    ("[1, 2]", "its metadata (convolab.json) is a JSON list, not an object of strings"),
    (b"\xe9" + json.dumps(META.to_strings()).encode(), "its metadata (convolab.json) is not UTF-8 JSON ('utf-8' codec"),
    (json.dumps(META.to_strings()).encode("utf-16"), "its metadata (convolab.json) is not UTF-8 JSON"),
], ids=["truncated", "a-list", "latin-1", "utf-16"])
def test_torchscript_metadata_not_json_is_one_line(torchscript, tmp_path, text, words):
    path = with_metadata(torchscript, tmp_path / "edited.pt", text)
    with pytest.raises(ExportError) as err:
        read_torchscript_meta(path)
    assert one_line(err).startswith(f"{path}: {words}"), err.value
    assert "the file was edited or damaged" in str(err.value)


EDITS = [  # (key, value as the file holds it, the words after "FILE: ")
    ("image_size", "[NaN]", "its metadata 'image_size' is [NaN], not [height, width] in pixels"),
    ("image_size", '["a"]', "its metadata 'image_size' is [\"a\"], not [height, width]"),
    ("image_size", "[0, 0]", "its metadata 'image_size' is [0, 0], not [height, width]"),
    ("std", "[0, 0]", "its metadata 'std' is [0, 0], not a list of 1 finite number, one per input channel"),
    ("std", "[0.0]", "its metadata 'std' is [0.0], but every value must be > 0"),
    ("mean", "[NaN]", "its metadata 'mean' is [NaN], not a list of 1 finite number"),
    ("in_chans", "7", "its metadata 'mean' is [0.5], not a list of 7 finite numbers, one per input channel"),
    ("in_chans", "0", "its metadata 'in_chans' is 0, not a whole number >= 1"),
    ("classes", "[0, 0]", "its metadata 'classes' is [0, 0], not a list of class names"),
    ("classes", "[]", "its metadata 'classes' is [], not a non-empty list of class names"),
    ("classes", "", "its metadata 'classes' is \"\", not JSON"),
    ("preprocess", "bogus", "its metadata 'preprocess' is \"bogus\", not one of 'resize', 'squash', 'center-crop'"),
    ("crop_mode", "bogus", "its metadata 'crop_mode' is \"bogus\", not one of '', 'L', 'RGB'"),
    ("interpolation", "nearest", "its metadata 'interpolation' is \"nearest\", not one of 'bilinear', 'bicubic'"),
    ("crop_pct", "0", "its metadata 'crop_pct' is 0, not a fraction in (0, 1]"),
    ("crop_pct", "[0.875]", "its metadata 'crop_pct' is [0.875], not a fraction in (0, 1]"),
    ("in_chans", 1, "its metadata 'in_chans' is 1, not a JSON string as an export writes it"),
]


@pytest.mark.parametrize("key, value, words", EDITS, ids=[f"{k}={v!r}" for k, v, _ in EDITS])
def test_metadata_edited_is_one_line_naming_the_file_and_field(key, value, words):
    with pytest.raises(ExportError) as err:
        ExportMeta.from_strings({**META.to_strings(), key: value}, "m.onnx")
    assert one_line(err).startswith(f"m.onnx: {words}"), err.value
    assert one_line(err).endswith("; the file was edited or damaged: export the model again with `convolab export`")


def test_torchscript_metadata_edited_names_the_file(torchscript, tmp_path):
    edited = {**META.to_strings(), "crop_mode": "bogus"}
    path = with_metadata(torchscript, tmp_path / "edited.pt", json.dumps(edited))
    with pytest.raises(ExportError) as err:
        read_torchscript_meta(path)
    assert one_line(err).startswith(f"{path}: its metadata 'crop_mode' is \"bogus\""), err.value

