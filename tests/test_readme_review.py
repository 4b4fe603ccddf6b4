"""What a tester reading the README found untrue, made true: an `export --out m.pt` (TorchScript) that predict and
evaluate would then refuse says how to name it, and the README's Python API snippet runs in order."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from convolab.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)
README = Path(__file__).parent.parent / "README.md"


def test_a_torchscript_export_under_a_plain_pt_name_says_how_predict_and_evaluate_run_it(tmp_path, capsys):
    """(before: written without a word, then refused by predict and evaluate as a TorchScript program that is not
    a checkpoint)"""
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress", "--output",
                 str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == ("predict and evaluate run a TorchScript file only under a name ending "
                                    ".torchscript.pt (a .pt is read as a checkpoint): rename it m.torchscript.pt "
                                    "to score it with them")
    (tmp_path / "m.pt").rename(tmp_path / "m.torchscript.pt")
    assert main(["evaluate", str(tmp_path / "m.torchscript.pt"), "--data", "digits", "--json"]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "n.torchscript.pt")]) == 0
    assert "rename it" not in capsys.readouterr().out


def test_the_python_api_snippet_imports_what_it_uses_before_it_uses_it():
    """(before: `evaluate_checkpoint(loaded, load_data("digits"))` two lines above `from convolab.data import
    load_data`, and `torchvision.models.resnet50()` with no `import torchvision`)"""
    block = README.read_text(encoding="utf-8").split("<!-- section:api -->")[1].split("<!-- /section:api -->")[0]
    code = block.split("```python")[1].split("```")[0]
    imported: set[str] = set()
    for number, line in enumerate(code.splitlines(), 1):
        if match := re.match(r"(?:from \S+ )?import (.+)", line):
            imported |= {name.split(" as ")[-1].strip() for name in match.group(1).split("#")[0].split(",")}
        for name in ("load_data", "torchvision", "evaluate_checkpoint", "from_torchvision", "RECIPES"):
            used = re.search(rf"(?<![\w.]){name}\b", line.split("#")[0])
            assert not used or name in imported or line.lstrip().startswith(("from", "import")), \
                f"line {number} uses {name} before importing it: {line}"
