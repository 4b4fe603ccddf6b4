"""Review by a user of their own images and of several processes: a labels CSV whose extra columns became targets
says how to learn the class column alone, a size that only most of a folder's images share is said as the most common
(22 of 90, not "most images"), one link is "a link" in the count of those skipped, the speed of runs of other numbers
of processes is said not comparable, and a rank killed outright names the command that continues the run."""
from __future__ import annotations

import contextlib
import io
import logging
import tarfile

import pytest
from PIL import Image
from test_labels_csv_checks import rows, write

from convolab.cli import main
from convolab.compare.report import differing_note
from convolab.compare.results import ModelResult, read_run
from convolab.data import load_data
from convolab.errors import DataError

QUICK = ["--data", "digits", "--batch-size", "128", "--epochs", "1", "--no-progress", "--threads", "1",
         "--model-option", "img_size=12"]


@pytest.mark.parametrize("column, cell, said", [
    # (a free-text note, unique a row: its test rows' values are "classes only in test rows")
    ("note", lambda i: f'"a, b {i}"', "column 'note' has classes only in test rows: 'a, b 11', 'a, b 15', 'a, b 3'"),
    ("source", lambda i: "cifar", "class column 'source' of "),  # (one value: "nothing to learn")
])
def test_a_column_that_became_a_target_unasked_says_how_to_learn_the_class_column_alone(tmp_path, column, cell, said):
    """(before: "fix the spelling, or give them training rows" of a note column, and a bare "nothing to learn", with
    no word of `targets`, which every column but the images and split is when it is not given)"""
    body = [[r[0], r[1], r[4], cell(i)] for i, r in enumerate(rows(16))]
    path = write(tmp_path, ["image", "species", "split", column], body)
    with pytest.raises(DataError) as err:
        load_data(path)
    assert said in str(err.value)
    assert str(err.value).endswith(f"if {column!r} is no target (every column but the images and split is one where "
                                   "`targets` is not given), give `targets` the columns to learn ('species')")
    assert load_data(path, targets=["species"]).columns["species"].classes == ("cat", "dog")


def test_the_main_column_of_one_class_gets_no_advice_to_learn_itself(tmp_path):
    body = [[r[0], "cat", r[4], r[2]] for r in rows(8)]
    with pytest.raises(DataError) as err:
        load_data(write(tmp_path, ["image", "species", "split", "colour"], body))
    assert str(err.value).endswith("nothing to learn")


def test_a_size_most_images_do_not_share_is_said_as_the_most_common_of_several(tmp_path):
    """(before: "is 8x8 while most images are 12x9" when 4 of 10 were 12x9)"""
    for k, (cls, sizes) in enumerate({"a": [(12, 9)] * 4 + [(8, 8)], "b": [(10, 7)] * 3 + [(9, 9)] * 2}.items()):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, (60 * k, 0, 0)).save(tmp_path / "d" / cls / f"{i}.png")
    with pytest.raises(DataError, match=r"is \d+x\d+ while the most common size is 12x9 \(4 of 10 images\)"):
        load_data(str(tmp_path / "d"), val_fraction=0.4)


def test_one_link_that_leads_nowhere_is_counted_as_one_link(tmp_path, caplog):
    root = tmp_path / "f"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), 30 * i).save(root / cls / f"{i}.png")
    with tarfile.open(tmp_path / "out.tar", "w") as tar:
        tar.add(root, arcname=".")
        link = tarfile.TarInfo("./a/outside.png")
        link.type, link.linkname = tarfile.SYMTYPE, "../../elsewhere/x.png"
        tar.addfile(link)
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_data(str(tmp_path / "out.tar"), workers=0, skip_bad_images=True, val_fraction=0.5)
    assert "skipped 1 link that leads nowhere in" in caplog.text


def _run(model: str, **fields) -> ModelResult:
    return ModelResult(model=model, run_dir=model, device="cpu", threads=1, images_per_second=100.0,
                       wall_seconds=1.0, history=[{"epoch": 1}], **fields)


def test_the_speed_of_runs_on_other_numbers_of_processes_is_said_not_comparable(tmp_path):
    """(before: a 1-process and a 2-process run of one thread each set 2,317 img/s beside 1,539 without a word, and
    results.json's notes were empty)"""
    assert "Not comparable in speed: the runs trained with different numbers of processes 1, 2, so their train " \
           "img/s" in differing_note([_run("a", processes=1), _run("b", processes=2)])
    assert differing_note([_run("a", processes=2), _run("b", processes=2)]) == ""
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "lenet5", *QUICK, "--output", str(tmp_path / "run")]) == 0
    assert read_run(tmp_path / "run").processes == 1  # (config.json's resolved processes)


def test_a_data_dir_given_with_data_it_does_not_serve_is_said_ignored(tmp_path, caplog):
    """(before: `--data FOLDER --data-dir /nonexistent` trained without a word of the --data-dir)"""
    with caplog.at_level(logging.WARNING, logger="convolab"):
        load_data("digits", data_dir=str(tmp_path / "nowhere"))
    assert f"`data_dir` {tmp_path / 'nowhere'} is where torchvision's data sets (" in caplog.text
    assert "digits is read as given, not from it" in caplog.text
