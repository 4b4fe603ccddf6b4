"""Files convolab did not write, left alone (found by a tester of trust boundaries): another program's hidden
temporary files in a run folder, a user's own curves.png or steps.csv in a folder given as --output, and the
files under a comparison's run folder that `compare --resume` clears."""
from __future__ import annotations

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
