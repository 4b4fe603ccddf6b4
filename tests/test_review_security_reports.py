"""Names drawn and written as they are: a `$` in a class, run folder or data folder's name is no mathtext in a
picture; `<`, `>`, `&` in results.md are escaped, as in report.html; a checkpoint that would run a command when
unpickled is named by what it holds."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import write_png_folder
from matplotlib.figure import Figure
from matplotlib.text import Text

from convolab.cli import main
from convolab.compare import read_run, write_seeds_report
from convolab.compare.report import markdown_table, summary_table
from convolab.errors import CheckpointError
from convolab.reproduce import plot_experiment
from convolab.training import load_checkpoint
from convolab.training.checkpoint import _unreadable

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

CLASSES = ("under_$5_to_$10", "over_$10", "$5-$10")  # (mathtext: a traceback, a traceback, "5-10" as maths)
HTML = "<img src=x onerror=alert(1)>"


@contextlib.contextmanager
def drawn() -> Iterator[list[Figure]]:
    """Every matplotlib figure saved in the block, as it was saved."""
    figures, save = [], Figure.savefig

    def saving(fig, *args, **kwargs):
        figures.append(fig)
        return save(fig, *args, **kwargs)

    Figure.savefig = saving
    try:
        yield figures
    finally:
        Figure.savefig = save


def assert_literal(fig: Figure, name: str) -> None:
    """`fig` shows `name`, and every text holding it is drawn as written (no mathtext)."""
    texts = [t for t in fig.findobj(Text) if name in t.get_text()]
    assert texts, [t.get_text() for t in fig.findobj(Text)]
    assert [t.get_text() for t in texts if t.get_parse_math()] == []


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, list[Figure]]:
    """One epoch of lenet5 on a data folder named `$a$` whose classes hold `$`, and the figures it drew."""
    root = tmp_path_factory.mktemp("dollars")
    data = write_png_folder(root / "$a$", per_class=8, size=28, classes=CLASSES, mode="L", split_dirs=False)
    with drawn() as figures:
        assert main(["train", "lenet5", "--data", str(data), "--epochs", "1", "--batch-size", "4", "--no-progress",
                     "--output", str(root / "run")]) == 0
    return root / "run", figures


def test_a_dollar_in_a_data_folders_name_is_drawn_as_written_in_the_curves(run):
    assert (run[0] / "curves.png").is_file()
    assert_literal(run[1][-1], "lenet5 on $a$")


def test_class_names_with_dollars_are_drawn_as_written_in_the_confusion_matrix(run, capsys):
    with drawn() as figures:
        assert main(["evaluate", str(run[0])]) == 0  # (before: a traceback, mathtext's ParseSyntaxException)
    assert (run[0] / "evaluation" / "confusion.png").is_file()
    ax = figures[-1].axes[0]
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert sorted(t.get_text() for t in labels) == sorted(CLASSES)
        assert [t.get_text() for t in labels if t.get_parse_math()] == []


def test_lr_find_draws_a_dollar_of_the_data_path_as_written(run, tmp_path, capsys):
    data = run[0].parent / "$a$"
    with drawn() as figures:
        assert main(["lr-find", "lenet5", "--data", str(data), "--batch-size", "4", "--no-progress",
                     "--output", str(tmp_path / "lr")]) == 0
    assert_literal(figures[-1], f"lenet5 on {data}")


def test_report_of_run_folders_named_with_dollars_and_html(run, tmp_path, capsys):
    runs = [tmp_path / "under_$5_to_$10", tmp_path / HTML]
    for folder in runs:
        shutil.copytree(run[0], folder)
    with drawn() as figures:  # (before: a traceback, mathtext's ParseSyntaxException)
        assert main(["report", *map(str, runs), "--output", str(tmp_path / "rep")]) == 0
    assert_literal(figures[-1], "lenet5 (under_$5_to_$10)")  # the legend
    assert [t.get_text() for t in figures[-1].legends[0].get_texts()] == ["lenet5 (under_$5_to_$10)",
                                                                          f"lenet5 ({HTML})"]
    md = (tmp_path / "rep" / "results.md").read_text(encoding="utf-8")
    assert "| lenet5 (&lt;img src=x onerror=alert(1)&gt;) |" in md and "<img" not in md  # (before: raw)
    assert "lenet5 (&lt;img" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


def test_the_seeds_report_escapes_names_in_results_md(run, tmp_path):
    one = read_run(run[0])
    results = [dataclasses.replace(one, model=model, final_acc=acc, best_acc=acc)
               for model, accs in (("a & <b>", (0.5, 0.6)), ("c", (0.7, 0.8))) for acc in accs]
    write_seeds_report(results, tmp_path / "rep", "convolab compare")
    md = (tmp_path / "rep" / "results.md").read_text(encoding="utf-8")
    assert "| a &amp; &lt;b&gt; |" in md  # the table
    assert "- a &amp; &lt;b&gt; " in md  # the test of the pair (before: `a & <b>` in both)
    assert "<b>" not in md


def test_the_table_a_terminal_shows_is_not_escaped_for_html(run):
    """compare and report print the table on a terminal, where `&gt;=` was what a status of `>= 0` read as; the
    files a renderer reads keep their escapes."""
    one = dataclasses.replace(read_run(run[0]), model="a & <b>", status="failed: seeds must be >= 0")
    for several in (False, True):
        results = [one, one] if several else [one]  # (a model run twice: its seeds' table)
        printed = summary_table(results, escape=False)
        assert "a & <b>" in printed and "seeds must be >= 0" in printed and "&" + "gt;" not in printed, printed
    assert "| a &amp; &lt;b&gt; |" in markdown_table([one]) and "| a &amp; &lt;b&gt; |" in summary_table([one])


def test_reproduces_picture_draws_names_as_written(run, tmp_path):
    outcome = SimpleNamespace(runs={"under_$5_to_$10": [[{"epoch": 1, "test_acc": 0.5}]]})
    with drawn() as figures:  # (before: a traceback, mathtext's ParseSyntaxException)
        plot_experiment(SimpleNamespace(name="over_$5 vs under_$10"), outcome, {"under_$5_to_$10": [run[0]]},
                        tmp_path / "curves.png")
    assert (tmp_path / "curves.png").is_file()
    assert_literal(figures[-1], "over_$5 vs under_$10")
    assert_literal(figures[-1], "under_$5_to_$10")


# ----- a checkpoint that would run a command ----------------------------------------------------------
class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_a_checkpoint_calling_os_system_is_named_by_the_function_it_pickles(tmp_path):
    torch.save({"model": _System(tmp_path / "ran")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert f"it holds a pickled {os.system.__module__}.system object, which convolab does not unpickle" in str(
        err.value)  # (before: "a damaged archive (Weights only load failed)")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("text", [
    # torch 2.6 and later: a blocked module's global, no "WeightsUnpickler error:"
    "Weights only load failed. In PyTorch 2.6, we changed ... trusted source.\n\n\nTrying to load unsupported "
    "GLOBAL posix.system whose module posix is blocked.\n\nCheck the documentation of torch.load to learn more",
    # torch 2.4 and 2.5
    "Weights only load failed. ... Please file an issue with the following so that we can make `weights_only=True` "
    "compatible with your use case: WeightsUnpickler error: Trying to load unsupported GLOBAL posix.system whose "
    "module posix is blocked.\n\nCheck the documentation of torch.load to learn more"])
def test_either_wording_of_a_blocked_global_names_it(text):
    line = _unreadable(Path("evil.pt"), RuntimeError(text), ["evil/data.pkl"])
    assert "it holds a pickled posix.system object, which convolab does not unpickle" in line
