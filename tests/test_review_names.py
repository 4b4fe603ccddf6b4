"""Class names read alike in every locale and in either Unicode normalization (fix-names).

A folder's or tar member's name is its bytes read as UTF-8 (before: decoded with the locale's encoding, so that
`猫/` was the class `ç\\x8c«` in an ISO-8859-1 shell and `caf\\udcc3\\udca9` in the C locale, and the image cache
carried those into UTF-8 shells); `café` composed (NFC, typed) and decomposed (NFD, as macOS names files) is one
class (before: two that print alike, or a test class "the training split lacks")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convolab.data import folder
from convolab.data.folder import load_image_folder
from convolab.data.labels_csv import load_labels_csv
from convolab.data.names import printable
from convolab.errors import DataError
from convolab.training.engine import check_same_classes
from convolab.training.inference import class_mapping

NFC, NFD = "caf\u00e9", "cafe\u0301"
C_LOCALE = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"}  # (Python's file names: ASCII)
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locales and file names")


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def _folder(root: Path, layout: dict[str, list[str]], per_class: int = 3) -> Path:
    """`root/<split>/<class>/<i>.png` for each split's classes (split '' : `root/<class>/`)."""
    for split, classes in layout.items():
        for k, name in enumerate(classes):
            for i in range(per_class):
                _png(root / split / name / f"{i}.png", 40 * k + i)
    return root


def _in_c_locale(script: str, tmp_path: Path) -> dict:
    """What `script` prints as JSON, run by a Python whose locale is C without UTF-8 mode."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, **C_LOCALE})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout.decode("ascii").splitlines()[-1])


@POSIX
def test_a_folders_and_a_tars_class_names_are_their_utf8_bytes_in_the_c_locale(tmp_path):
    """(before: `caf\\udcc3\\udca9` and `\\udce7\\udc8c\\udcab`, surrogates, in the checkpoint; a tar's class names so
    too, tarfile decoding its members' names with the locale's encoding) A name that is not UTF-8 keeps its byte."""
    data = _folder(tmp_path / "d", {"train": [NFC, "猫"], "test": [NFC, "猫"]})
    _png(Path(os.fsdecode(os.fsencode(str(data)) + b"/train/x\xff/0.png")), 9)  # a folder whose name is not UTF-8
    _png(Path(os.fsdecode(os.fsencode(str(data)) + b"/test/x\xff/0.png")), 9)
    with tarfile.open(tmp_path / "d.tar", "w", format=tarfile.GNU_FORMAT, encoding="utf-8") as tar:
        tar.add(data / "train", "train")  # (GNU's format, as GNU tar writes: the names' bytes, not PAX's UTF-8)
        tar.add(data / "test", "test")
    script = f"""if True:
        import json
        from convolab.data.folder import load_image_folder
        got = {{}}
        for name, path in (("folder", {str(data)!r}), ("tar", {str(tmp_path / "d.tar")!r})):
            for loader in ("cache", "stream"):
                data = load_image_folder(path, loader=loader, cache_dir={str(tmp_path / "cache")!r}, workers=0)
                got[name + "-" + loader] = [ascii(c) for c in data.classes]
                if loader == "stream":  # (every image read by the name the listing gave it)
                    got[name + "-read"] = all(data.train.reader.read(at) for at in data.train.locations)
        print(json.dumps(got))"""
    got = _in_c_locale(script, tmp_path)
    wanted = [ascii(c) for c in sorted([NFC, "猫", "x\udcff"])]
    assert got == {"folder-cache": wanted, "folder-stream": wanted, "folder-read": True,
                   "tar-cache": wanted, "tar-stream": wanted, "tar-read": True}
    assert printable("x\udcff") == "x\\xff"
    # a UTF-8 shell reads the cache the C locale made: the same names
    again = load_image_folder(data, loader="cache", cache_dir=tmp_path / "cache")
    assert again.classes == sorted([NFC, "猫", "x\udcff"])


def test_a_cache_of_the_version_before_names_were_read_as_utf8_is_not_read(tmp_path, monkeypatch):
    """(before: a cache made in an ISO-8859-1 shell, its classes `ç\\x8c«`, was read so in UTF-8 ones: the cache's key
    is the names' bytes, alike in every locale) The cache's version is past it, so such a cache is decoded anew."""
    data = _folder(tmp_path / "d", {"train": ["猫", "犬"], "test": ["猫", "犬"]})
    with monkeypatch.context() as m:
        m.setattr(folder, "CACHE_VERSION", 6)  # the version that cached names as the locale decoded them
        load_image_folder(data, loader="cache", cache_dir=tmp_path / "cache")
    [old] = (tmp_path / "cache").glob("*.pt")
    cached = torch.load(old, weights_only=True)
    torch.save({**cached, "classes": ["ç\x8a¬", "ç\x8c«"]}, old)  # as an ISO-8859-1 shell cached them
    assert load_image_folder(data, loader="cache", cache_dir=tmp_path / "cache").classes == ["犬", "猫"]


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_a_class_folder_in_nfd_and_in_nfc_is_one_class(tmp_path, loader):
    """(before: train/ in NFD as a Mac wrote it, test/ in NFC: "the test split has classes the training split
    lacks: café"; both forms in one split: two classes that print alike) Each image keeps its own file."""
    data = _folder(tmp_path / "d", {"train": [NFD, "tea"], "test": [NFC, "tea"]})
    _folder(tmp_path / "d", {"train": [NFC]}, per_class=1)  # (and an NFC folder beside the NFD one)
    got = load_image_folder(data, loader=loader, cache_dir=tmp_path / "cache", workers=0)
    assert got.classes == [NFC, "tea"]
    assert len(got.train) == 7 and len(got.test) == 6
    if loader == "stream":
        assert all(got.train.reader.read(at) for at in got.train.locations)


def _csv(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["image,label,split", *(",".join(row) for row in rows)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "labels.csv"


def test_a_labels_csv_class_typed_in_nfc_and_pasted_in_nfd_is_one_class(tmp_path):
    """(before: `café` typed on some rows, pasted from a Mac's file name on others: two classes `café`)"""
    rows = []
    for i in range(12):
        _png(tmp_path / f"{i}.png", 20 * i)
        rows.append((f"{i}.png", [NFC, NFD, "tea"][i % 3], "test" if i >= 9 else "train"))
    data = load_labels_csv(_csv(tmp_path, rows))
    assert data.classes == [NFC, "tea"]
    assert data.train.labels.tolist() == [0, 0, 1] * 3


def test_a_labels_csv_path_typed_in_nfc_opens_the_file_a_mac_named_in_nfd(tmp_path):
    """(before: "image café/0.png does not exist (looked for .../café/0.png)", the folder being `cafe\\u0301/`)"""
    rows = []
    for i in range(6):
        _png(tmp_path / NFD / f"{i}.png", 30 * i)
        rows.append((f"{NFC}/{i}.png", "ab"[i % 2], "test" if i >= 4 else "train"))
    data = load_labels_csv(_csv(tmp_path, rows))
    assert len(data.train) == 4 and data.test.images[1].max() == 150
    with pytest.raises(DataError, match=r"image café/9.png does not exist"):  # (one found in neither form: said)
        load_labels_csv(_csv(tmp_path, [*rows, (f"{NFC}/9.png", "a", "train")]))


@POSIX
def test_a_labels_csv_names_utf8_files_in_the_c_locale(tmp_path):
    """(before: UnicodeEncodeError, a traceback: the CSV's UTF-8 text encoded in ASCII, the locale's encoding, to
    open `猫/0.png`) The CSV's text is the files' bytes."""
    rows = []
    for i in range(6):
        _png(tmp_path / "猫" / f"{i}.png", 30 * i)
        rows.append((f"猫/{i}.png", ["猫", "犬"][i % 2], "test" if i >= 4 else "train"))
    csv = _csv(tmp_path, rows)
    got = _in_c_locale(f"""if True:
        import json
        from convolab.data.labels_csv import load_labels_csv
        print(json.dumps([ascii(c) for c in load_labels_csv({str(csv)!r}).classes]))""", tmp_path)
    assert got == [ascii("犬"), ascii("猫")]


def test_a_checkpoints_classes_in_nfd_match_the_datas_in_nfc():
    """(before: evaluate of a run whose checkpoint, of an older version, kept `café` as a Mac named it: "the data has
    classes the checkpoint does not know: café")"""
    assert class_mapping([NFC, "tea"], ["tea", NFD]).tolist() == [1, 0]
    with pytest.raises(DataError, match="does not know: water"):
        class_mapping([NFC, "water"], ["tea", NFD])


def test_resume_takes_the_classes_in_nfd_a_checkpoint_kept_for_those_read_in_nfc(tmp_path):
    """(before: "--data ... no longer holds the classes RUN was trained on (gone: café; new: café)")"""
    check_same_classes({"classes": [NFD, "tea"]}, [NFC, "tea"], tmp_path, "d")
    with pytest.raises(DataError, match="no longer holds the classes"):
        check_same_classes({"classes": [NFD, "tea"]}, [NFC, "water"], tmp_path, "d")
