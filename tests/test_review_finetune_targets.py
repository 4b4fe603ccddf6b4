"""Fine-tuning a labels CSV's run of several heads on some of its targets, and without naming its inputs.

Before: `finetune RUN --targets species,colour` of a species,colour,age run died mid-epoch (the age head, of one
output, scored against the species labels: IndexError) leaving config.json; `--targets species,age` trained and
scored the kept colour head against the SPECIES labels (metrics.csv's test_acc_colour was how often it agreed with
species); `--targets species` kept both heads, untrained, in the new checkpoint. Now the heads --targets leaves out
are dropped (from the model, its options and its checkpoint) in every case, each kept head learns and is scored on
its own column, and a task head without its target is an error wherever a loss or a score is made. A two-image run
fine-tuned on its CSV without --inputs reads the checkpoint's inputs (as evaluate does), not one image an item."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convolab.cli import main
from convolab.errors import ConfigError
from convolab.training.loop import weighted_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

FAST = ["--batch-size", "4", "--lr", "0.01", "--threads", "1", "--no-progress"]
TEST_ROWS = {0, 3, 5, 6, 9, 12}  # both species and both colours among them, colour apart from species


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A labels CSV of 18 items of two grey 28 px images each (species, colour and age apart from each other) and
    a run of lenet5_modern on both images, learning all three targets."""
    folder = tmp_path_factory.mktemp("ft_targets")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(18):
        for name in (f"{i}a.png", f"{i}b.png"):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(folder / name)
        rows.append([f"{i}a.png", f"{i}b.png", ("cat", "dog")[i % 2], ("red", "blue")[i // 2 % 2], str(2 + i % 7),
                     "test" if i in TEST_ROWS else "train"])
    path = folder / "labels.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["image", "image2", "species", "colour", "age", "split"], *rows])
    trained = folder / "run"
    assert main(["train", "lenet5_modern", "--data", str(path), "--inputs", "image,image2", "--epochs", "2",
                 "--output", str(trained), *FAST]) == 0
    return trained, path


def header(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")


@pytest.mark.parametrize("targets, kept, dropped", [("species,colour", {"colour": 2}, ["age"]),
                                                    ("species,age", {"age": 1}, ["colour"]),
                                                    ("species", {}, ["colour", "age"])])
def test_finetune_on_some_targets_drops_the_other_heads(run, tmp_path, capsys, caplog, targets, kept, dropped):
    trained, path = run
    out = tmp_path / "ft"
    caplog.set_level(logging.INFO, logger="convolab")
    assert main(["finetune", str(trained), "--data", str(path), "--inputs", "image,image2", "--targets", targets,
                 "--epochs", "1", "--output", str(out), *FAST]) == 0
    said = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert said == [f"{trained}'s head{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} "
                    f"{'are' if len(dropped) > 1 else 'is'} dropped: not among the labels CSV's targets "
                    f"({targets.replace(',', ', ')})"], said
    columns = header(out)
    scored = [c for c in columns if c.startswith(("test_acc_", "test_mae_"))]
    assert scored == [f"test_{'acc' if n == 'colour' else 'mae'}_{n}" for n in kept], columns
    config = json.loads((out / "config.json").read_text())
    assert config["model_options"]["tasks"] == kept
    best = torch.load(out / "best.pt", weights_only=False)
    assert best["model_options"]["tasks"] == kept
    assert list(best["table"]["targets"]) == ["species", *kept]
    heads = {k.split(".")[0] for k in best["model"]}
    assert set(kept) <= heads and not heads & set(dropped), heads
    # The run is whole: evaluate and --resume rebuild its model of the kept heads alone.
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    if "colour" in kept:  # the colour head scored on the colours, in training as in evaluate (one epoch: best.pt)
        acc = float(next(line for line in lines if line.split()[:2] == ["colour", "class"]).split()[-1])
        last = dict(zip(columns, (out / "metrics.csv").read_text().splitlines()[-1].split(","), strict=True))
        assert float(last["test_acc_colour"]) == pytest.approx(acc, abs=1e-4), (last, lines)
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0


def test_finetune_of_a_two_image_run_reads_its_inputs_from_the_checkpoint(run, tmp_path, capsys):
    """Before: without --inputs the CSV gave one image an item: `cannot make 1-channel images into the model's
    2-channel input; ... score it on its labels CSV`, which --data already was."""
    trained, path = run
    out = tmp_path / "ft"
    assert main(["finetune", str(trained), "--data", str(path), "--epochs", "1", "--output", str(out), *FAST]) == 0, \
        capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["inputs"] == ["image", "image2"]
    assert config["model_options"]["tasks"] == {"colour": 2, "age": 1}  # (every column: no head dropped)
    assert [c for c in header(out) if c.startswith("test_")][-2:] == ["test_acc_colour", "test_mae_age"]


def test_a_task_head_without_its_target_is_an_error_never_the_main_labels():
    from convolab.training.targets import output_target  # (new with the fix: the other tests run without it)

    outputs = {"main": torch.randn(4, 2), "colour": torch.randn(4, 2), "aux1": torch.randn(4, 2)}
    y = torch.tensor([0, 1, 1, 0])
    weights = {"main": 1.0, "colour": 1.0, "aux1": 0.3}
    with pytest.raises(ConfigError, match="head 'colour' has no target of its own"):
        weighted_loss(outputs, y, {}, weights, 0.0, task_heads={"colour": 2})
    colour = torch.tensor([1, 1, 0, 0])
    loss = weighted_loss(outputs, y, {"colour": colour}, weights, 0.0, task_heads={"colour": 2})
    ce = torch.nn.functional.cross_entropy
    expected = ce(outputs["main"], y) + ce(outputs["colour"], colour) + 0.3 * ce(outputs["aux1"], y)  # aux1: the labels
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert output_target("aux1", y, {"colour": colour}, {"colour": 2}) is y
    with pytest.raises(ConfigError, match="head 'age' has no target of its own"):
        output_target("age", y, {"colour": colour}, {"colour": 2, "age": 1})


def test_finetune_with_another_column_as_the_main_target_drops_the_head_of_that_column(run, tmp_path, capsys):
    # (found by the review of this change: `--targets colour` refused "head colour has no target", and the advice
    # of `--targets colour,species`'s refusal was that very command: the colour head is dropped, as the main
    # classifier learns colour now)
    trained, labels = run
    assert main(["finetune", str(trained), "--data", str(labels), "--targets", "colour", "--epochs", "1",
                 "--output", str(tmp_path / "ft"), *FAST]) == 0
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["model_options"]["tasks"] == {}
    capsys.readouterr()
    assert main(["finetune", str(trained), "--data", str(labels), "--targets", "colour,species", "--epochs", "1",
                 "--output", str(tmp_path / "ft2"), *FAST]) == 2
    assert "give --targets colour to learn its main target alone" in capsys.readouterr().err
