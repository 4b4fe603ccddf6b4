"""Files convolab did not write, left alone (found by a tester of trust boundaries): another program's hidden
temporary files in a run folder, a user's own curves.png or steps.csv in a folder given as --output, and the
files under a comparison's run folder that `compare --resume` clears."""
from __future__ import annotations

import json
import shutil

import pytest

from convolab.cli import main
from convolab.errors import ConfigError
from convolab.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

TINY = ["--data", "digits", "--epochs", "1", "--train-subset", "64", "--test-subset", "32", "--no-progress"]


def test_a_run_leaves_other_programs_hidden_temporaries_in_its_folder(tmp_path, capsys):
    """`.NAME.XXXXXXXX.tmp` is mkstemp's usual name: only convolab's own, naming a writer that has ended, go."""
    out = tmp_path / "proj"
    out.mkdir()
    others = [out / ".thesis.docx.a1b2c3d4.tmp", out / ".notes.abcdefgh.tmp"]
    for path in others:
        path.write_text("another program's write")
    assert main(["train", "lenet5_modern", *TINY, "--output", str(out)]) == 0
    assert all(path.read_text() == "another program's write" for path in others)
    assert "left by a write that was killed" not in capsys.readouterr().err


def test_a_trainer_refuses_a_folder_holding_files_a_run_would_replace(tmp_path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "curves.png").write_bytes(b"a user's own figure")
    with pytest.raises(ConfigError, match=r"TrainConfig\(output='.*figures'\): .*figures holds no run but holds "
                                          r"curves.png, which a run there would replace"):
        Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(out))).fit()
    assert (out / "curves.png").read_bytes() == b"a user's own figure"
    assert sorted(p.name for p in out.iterdir()) == ["curves.png"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """A finished comparison of two LeNets on a few digits."""
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    assert main(["compare", "lenet5", "lenet5_modern", *TINY, "--output", str(out)]) == 0
    return out


def _failed_copy(comparison, tmp_path):
    """The comparison, copied, with lenet5_modern recorded as failed and its folder gone: `--resume` trains it
    afresh, clearing runs/lenet5_modern first."""
    copy = tmp_path / "cmp"
    shutil.copytree(comparison, copy)
    record = json.loads((copy / "compare.json").read_text())
    record["statuses"]["lenet5_modern"] = "failed: x"
    (copy / "compare.json").write_text(json.dumps(record))
    shutil.rmtree(copy / "runs" / "lenet5_modern")
    return copy


def _status(copy) -> str:
    """lenet5_modern's status in the comparison's record: "ok", or "failed: " and the run's one line."""
    return json.loads((copy / "compare.json").read_text())["statuses"]["lenet5_modern"]


def test_compare_resume_empties_no_folder_a_run_folder_links_to(comparison, tmp_path):
    copy = _failed_copy(comparison, tmp_path)
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "thesis.tex").write_text("thesis")
    (copy / "runs" / "lenet5_modern").symlink_to(precious)
    main(["compare", "--resume", str(copy)])
    assert f"runs/lenet5_modern is a link (to {precious}), not the folder the run left" in _status(copy)
    assert sorted(p.name for p in precious.iterdir()) == ["sub", "thesis.tex"]
    assert (precious / "thesis.tex").read_text() == "thesis"


def test_compare_resume_deletes_no_file_a_run_did_not_write(comparison, tmp_path):
    copy = _failed_copy(comparison, tmp_path)
    left = copy / "runs" / "lenet5_modern"  # what a failed attempt left: its config, metrics, no checkpoint
    shutil.copytree(comparison / "runs" / "lenet5", left)
    (left / "last.pt").unlink()
    (left / "best.pt").unlink()
    (left / "notes.txt").write_text("mine")
    main(["compare", "--resume", str(copy)])
    assert ("runs/lenet5_modern holds files that are not its run's (notes.txt), which training the run afresh would "
            "delete: move them out, then resume again") in _status(copy)
    assert (left / "notes.txt").read_text() == "mine" and (left / "config.json").is_file()
    # without them, the run's own files go and it trains afresh
    (left / "notes.txt").unlink()
    assert main(["compare", "--resume", str(copy)]) == 0
    assert _status(copy) == "ok"
