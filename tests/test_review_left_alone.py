"""Faults an earlier review noticed and left alone, mended: each test failed on the code before its fix."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import matplotlib.figure
import pytest

from convolab._paths import lies_within
from convolab.compare import curves
from convolab.compare.results import ModelResult
from convolab.compare.seeds import summarize_seeds
from convolab.errors import ConfigError
from convolab.training.config import TrainConfig
from convolab.training.rundir import refuse_output_inside_data


@pytest.fixture
def legends(monkeypatch):
    """The texts of each figure's legend as the figure is saved (nothing is drawn)."""
    seen: list[list[str]] = []

    def savefig(fig, target, *args, **kwargs):
        seen.append([t.get_text() for legend in fig.legends for t in legend.get_texts()])

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return seen


def history(epochs: int) -> list[dict[str, float]]:
    return [{"epoch": e, "wall_seconds": 2.0 * e, "train_loss": 1.0 / e, "test_acc": 0.5 + 0.1 * e}
            for e in range(1, epochs + 1)]


def run_folder(path: Path) -> str:
    """A run folder holding the steps.csv the curves by step read."""
    path.mkdir(parents=True)
    with open(path / "steps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "lr", "train_loss", "train_acc", "train_error", "images"])
        w.writerows([[10, 1, 0.01, 1.5, 0.5, 0.5, 640], [20, 2, 0.01, 1.4, 0.6, 0.4, 640]])
    return str(path)


def test_compare_legend_names_a_run_whose_name_starts_with_an_underscore(tmp_path, legends):
    # matplotlib's own gathering of a legend leaves out a label starting with `_`: the run `_mine` was unnamed
    results = [ModelResult(model=name, run_dir=run_folder(tmp_path / name), history=history(2))
               for name in ("_mine", "lenet5")]
    curves.plot_comparison(results, "mnist")
    assert legends[-1] == ["_mine", "lenet5"]
    several = [ModelResult(model=name, run_dir=run_folder(tmp_path / f"{name}{seed}"),
                           history=history(2))
               for name in ("_mine", "lenet5") for seed in range(2)]
    curves.plot_seed_comparison(summarize_seeds(several), "mnist")
    assert [text.split(":")[0] for text in legends[-1]] == ["_mine", "lenet5"]


def test_a_run_folder_inside_the_data_is_caught_on_a_file_system_blind_to_case(tmp_path, monkeypatch):
    # macOS's default file system: `Photos` opens the folder `photos`. Emulated by a stat that reads it so;
    # paths were compared as strings, and `--data photos --output Photos/run1` was let through
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(os.fsdecode(p).replace("/Photos", "/photos"), *a, **k))
    assert lies_within(tmp_path / "Photos" / "run1", tmp_path / "photos")
    assert lies_within(tmp_path / "Photos", tmp_path / "photos")
    assert not lies_within(tmp_path / "photos" / ".." / "run1", tmp_path / "photos")  # (`..` undone first)
    assert not lies_within(tmp_path / "run1", tmp_path / "photos")
    config = TrainConfig(model="lenet5", data=str(tmp_path / "photos"), output=str(tmp_path / "Photos" / "run1"))
    with pytest.raises(ConfigError, match="lies inside the data folder"):
        refuse_output_inside_data(config)
