"""Data inputs that are not regular image files: a device or a FIFO among a folder's images (skipped with
--skip-bad-images, never read), a tar's members named as `tar -x` names them (leading `/` and `./` dropped, `..`
refused), and the size a compressed archive leaves in the cache, said. The refusals in one line are rows of
test_bad_inputs.py."""
from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from pathlib import Path

import pytest
from conftest import write_png_folder
from PIL import Image

from convolab.cli import main
from convolab.data import load_data
from convolab.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


def _tar(path: Path, names: list[str], extra: dict[str, bytes] | None = None) -> Path:
    """A tar of 8 px grey PNGs under the member names given, as written (tarfile.add would normalize them)."""
    with tarfile.open(path, "w") as tar:
        for i, name in enumerate(names):
            data = _png(20 * (i % 10))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_skip_bad_images_skips_a_link_to_dev_zero_and_a_fifo_and_trains(tmp_path, caplog, loader):
    """Before: /dev/zero read until a MemoryError's traceback (exit 1) with --skip-bad-images too; a FIFO for ever."""
    data = write_png_folder(tmp_path / "z", per_class=6, size=28, classes=("a", "b"), mode="L", split_dirs=False)
    os.symlink("/dev/zero", data / "a" / "evil.png")
    os.mkfifo(data / "b" / "pipe.png")
    caplog.set_level(logging.INFO)
    assert main(["train", "lenet5_modern", "--data", str(data), "--skip-bad-images", "--loader", loader,
                 "--workers", "0", "--image-size", "28", "--epochs", "1", "--batch-size", "4", "--no-progress",
                 "--output", str(tmp_path / "run")]) == 0
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped 2 ")]
    assert skipped and f"(the first: image {data / 'a' / 'evil.png'})" in skipped[0], caplog.text
    assert (tmp_path / "run" / "best.pt").is_file()
    assert os.readlink(data / "a" / "evil.png") == "/dev/zero" and (data / "b" / "pipe.png").is_fifo()


@pytest.mark.parametrize("loader", ["cache", "stream"])
def test_a_tars_members_named_with_a_leading_slash_or_dot_read_as_tar_x_unpacks_them(tmp_path, loader):
    """Before: `./cat/` and `/dog/` were the classes '.' and ''."""
    tar = _tar(tmp_path / "lead.tar", [f"./cat/{i}.png" for i in range(6)] + [f"/dog/{i}.png" for i in range(6)])
    data = load_data(str(tar), val_fraction=0.5, loader=loader, workers=0)
    assert data.classes == ["cat", "dog"]
    if loader == "stream":  # every file read back from the tar under its name as unpacked
        locations = data.train.locations + data.test.locations
        assert sorted(locations) == [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(6)]
        assert all(data.train.reader.read(n) == _png(20 * (i % 10)) for n, i in zip(sorted(locations), range(12)))
    else:
        assert len(data.train.labels) + len(data.test.labels) == 12


def test_a_tar_member_named_with_dotdot_is_refused_or_skipped(tmp_path, caplog):
    """Before: `../x/c.png` was an image of a class '..' without a word."""
    names = [f"cat/{i}.png" for i in range(6)] + [f"dog/{i}.png" for i in range(6)]
    tar = _tar(tmp_path / "up.tar", [*names, "../x/c.png", "cat/../../y/d.png"])
    with pytest.raises(DataError, match=r"up\.tar:\.\./x/c\.png \(and 1 more\) is named with a '\.\.' component"):
        load_data(str(tar), val_fraction=0.5)
    caplog.set_level(logging.INFO)
    data = load_data(str(tar), val_fraction=0.5, skip_bad_images=True)
    assert data.classes == ["cat", "dog"] and len(data.train.labels) + len(data.test.labels) == 12
    assert f"skipped 2 images named with '..' in {tar} (the first: {tar}:../x/c.png)" in caplog.text


def test_decompressing_a_compressed_tar_names_the_size_written(tmp_path, caplog, monkeypatch):
    """Before: "decompressing ... once to ..." alone: a 4.5 MB .tar.gz left 1 GiB in the cache without a word."""
    monkeypatch.setenv("CONVOLAB_CACHE", str(tmp_path / "cache"))
    names = [f"cat/{i}.png" for i in range(6)] + [f"dog/{i}.png" for i in range(6)]
    plain = _tar(tmp_path / "big.tar", names, {"notes.bin": bytes(3 << 20)})  # (3 MiB of zeros: not an image)
    size = plain.stat().st_size
    gz = tmp_path / "big.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert gz.stat().st_size < size // 100
    caplog.set_level(logging.INFO)
    load_data(str(gz), val_fraction=0.5, loader="stream", workers=0)
    assert f"decompressed {gz}: {size / (1 << 20):,.1f} MiB written to" in caplog.text, caplog.text
    small = tmp_path / "small.tar.gz"
    small.write_bytes(gzip.compress(_tar(tmp_path / "small.tar", names).read_bytes()))
    load_data(str(small), val_fraction=0.5, loader="stream", workers=0)
    assert f"decompressed {small}: {(tmp_path / 'small.tar').stat().st_size:,} bytes written to" in caplog.text
