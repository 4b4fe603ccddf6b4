"""Names in other scripts (Chinese, Japanese, Korean...): in the pictures, drawn in an installed font that has them,
not as ? (a font of two Chinese glyphs is made and installed for matplotlib in the test, as a user's Noto Sans CJK
or Microsoft YaHei would be), or as ? without a warning per glyph where none has them; in the tables, lined up by
the columns they take; in default folder names, cut to what a file system takes."""
from __future__ import annotations

import argparse
import contextlib
import io
import warnings

import matplotlib.figure
import numpy as np
import pytest
import torch
from matplotlib.font_manager import fontManager

from convolab._platform import columns, padded
from convolab.cli import evaluate as evaluate_cli
from convolab.compare import curves
from convolab.compare.results import ModelResult
from convolab.training import inference, metrics
from convolab.training.lr_find import LRFindResult, lr_find_figure
from convolab.training.run_names import data_stem

FAMILY = "Convolab Test Cats"


@pytest.fixture
def cat_font(tmp_path, monkeypatch):
    """A TrueType font whose only glyphs are 猫 and 狗 (filled boxes), installed for matplotlib for one test."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def box():
        pen = TTGlyphPen(None)
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((800, 700))
        pen.lineTo((800, 0))
        pen.closePath()
        return pen.glyph()

    order = [".notdef", "cat", "dog"]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(order)
    builder.setupCharacterMap({ord("猫"): "cat", ord("狗"): "dog"})
    builder.setupGlyf({name: box() for name in order})
    builder.setupHorizontalMetrics({name: (1000, 100) for name in order})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": FAMILY, "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    path = tmp_path / "cats.ttf"
    builder.save(str(path))
    monkeypatch.setattr(fontManager, "ttflist", list(fontManager.ttflist))  # (restored after the test)
    fontManager.addfont(str(path))
    return FAMILY


def missing_glyph_warnings(fig) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png", dpi=50)
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def test_chinese_class_names_are_drawn_in_an_installed_font_that_has_them(cat_font):
    # they were drawn as "0: ?" and "1: ?" whatever fonts the machine had
    assert metrics.undrawable("猫狗 cat") == set()
    assert inference.drawn_names(["猫", "狗"]) == ["猫", "狗"]
    assert metrics.fonts("猫")["fontfamily"][-1] == cat_font
    fig = inference.confusion_figure(np.array([[3, 1], [0, 4]]), ["猫", "狗"], "lenet5 on 猫狗")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["猫", "狗"]
    assert cat_font in ax.get_xticklabels()[0].get_fontfamily()
    assert cat_font in ax.title.get_fontfamily()
    assert missing_glyph_warnings(fig) == []


def test_names_no_installed_font_draws_are_drawn_as_question_marks_once(monkeypatch):
    # (matplotlib's own fonts alone, none of which has 猫: the names are numbered so that they stay apart, and no
    # warning is given per glyph)
    monkeypatch.setattr(fontManager, "ttflist", [f for f in fontManager.ttflist if f.name.startswith("DejaVu")])
    assert metrics.fonts("lenet5 on digits") == {}
    assert metrics.undrawable("猫") == {"猫"}
    assert metrics.fonts("猫") == {}
    assert inference.drawn_names(["猫", "狗"]) == ["0: ?", "1: ?"]
    fig = inference.confusion_figure(np.array([[3, 1], [0, 4]]), ["猫", "狗"], "lenet5")
    assert missing_glyph_warnings(fig) == []


def dejavu_only(monkeypatch):
    monkeypatch.setattr(fontManager, "ttflist", [f for f in fontManager.ttflist if f.name.startswith("DejaVu")])


def test_lr_find_title_in_chinese_warns_of_no_glyph(monkeypatch):
    # lr-find on data named 我的数据集 printed a "Glyph ... missing" warning per character and drew boxes
    dejavu_only(monkeypatch)
    lrs = [10 ** (-5 + k / 10) for k in range(40)]
    losses = [2.0 - k / 40 if k < 30 else 1.5 + k / 10 for k in range(40)]
    fig = lr_find_figure(LRFindResult(lrs, losses, losses), "lenet5 on 我的数据集_猫和狗")
    assert fig.axes[0].get_title() == "lenet5 on ?????_???"
    assert missing_glyph_warnings(fig) == []


def test_compare_legend_names_in_chinese_stay_apart_and_warn_of_no_glyph(tmp_path, monkeypatch, cat_font):
    # report's legend showed two identical entries of boxes for runs 第一次实验 and 第二次实验, and warned per glyph
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    results = [ModelResult(model=name, run_dir=str(tmp_path / "none"), history=[
        {"epoch": 1, "wall_seconds": 1.0, "train_loss": 1.0, "test_acc": 0.5}]) for name in ("第一次", "第二次", "猫")]
    curves.plot_comparison(results, "digits")
    legend = saved[-1].legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["1: ???", "2: ???", "3: 猫"]  # (猫: in the font that has it)
    assert cat_font in legend.get_texts()[0].get_fontfamily()
    monkeypatch.undo()
    dejavu_only(monkeypatch)
    assert metrics.drawable(["第一次", "第二次"]) == ["1: ???", "2: ???"]
    assert metrics.drawable(["猫", "lenet5"]) == ["?", "lenet5"]


def test_a_long_chinese_data_name_gives_a_default_run_folder_a_file_system_takes(tmp_path):
    # 83 Chinese characters (249 bytes, a legal folder name): runs/lenet5-<them> was over 255 bytes, and refused as
    # an --output the user had not given
    name = "猫" * 83
    stem = data_stem(str(tmp_path / name))
    assert name.startswith(stem) and len(stem.encode()) <= 150
    folder = tmp_path / f"lr-find-inception_resnet_v2-{stem}-10"
    folder.mkdir()  # (the longest default name: it can be made)
    assert data_stem("../shared/data/cifar10-jpg.tar.gz") == "cifar10-jpg"


def test_evaluate_lines_up_names_of_wide_and_decomposed_characters_by_the_columns_they_take():
    # str.ljust counted characters: 猫咪 stood two columns out of line, a decomposed café one column short
    assert columns("猫咪") == 4 and columns("café") == 4 and columns("cafe\u0301") == 4
    assert [len(padded(n, 6)) for n in ("猫咪", "kitten", "cafe\u0301")] == [4, 6, 7]
    report = inference.EvaluationReport.of(torch.tensor([[1.0, 0.0, 0.0]] * 3), torch.tensor([0, 1, 2]),
                                           ["猫咪", "kitten", "cafe\u0301"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        evaluate_cli._print(argparse.Namespace(json=False), "lenet5 on cats", report, ("none", "the run's"), [], 3)
    rows = [line for line in printed.getvalue().splitlines() if line.startswith("  ")]
    assert {columns(line.rsplit("  ", 1)[0]) for line in rows} == {8}  # (every score starts at one column)
