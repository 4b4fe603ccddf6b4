"""Several targets and inputs from a labels CSV: images the test writes, whose pixels encode their labels
(the species a square's place, the colour another square's side, the age a bar's brightness), two class
columns and a numeric one trained by a three-headed model; two images of an item, or an image and
numbers, as the inputs; `evaluate` scoring each target; and the CSV's bad inputs as one-line errors."""
from __future__ import annotations

import csv
import dataclasses
import random

import numpy as np
import pytest
import torch
from PIL import Image

from convolab import create_model
from convolab.cli import main
from convolab.data import TabularImages, load_data
from convolab.errors import DataError, FieldError
from convolab.training import TrainConfig, Trainer

SPECIES = ("cat", "dog", "fox")
COLOURS = ("blue", "red")
FAST = ["--batch-size", "8", "--lr", "0.01", "--threads", "1", "--no-progress"]


def picture(species: int, colour: int, age: float) -> np.ndarray:
    a = np.zeros((28, 28), np.uint8)
    a[3:11, 2 + 9 * species:9 + 9 * species] = 255
    a[14:22, 2 + 16 * colour:10 + 16 * colour] = 255
    a[24:27, 2:26] = int(20 * age)
    return a


def write_items(folder, count: int = 36) -> list[dict]:
    """`count` items with their pictures written; every fourth a test item."""
    rng = random.Random(0)
    items = []
    for i in range(count):
        s, c, age = i % 3, (i // 3) % 2, round(rng.uniform(1, 12), 1)
        Image.fromarray(picture(s, c, age)).save(folder / f"{i}.png")
        items.append({"image": f"{i}.png", "species": SPECIES[s], "colour": COLOURS[c], "age": age,
                      "split": "test" if i % 4 == 3 else "train", "s": s, "c": c})
    return items


def write_csv(path, header: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    items = write_items(folder)
    path = write_csv(folder / "labels.csv", ["image", "species", "colour", "age", "split"],
                     [[it[k] for k in ("image", "species", "colour", "age", "split")] for it in items])
    return folder, items, path


def test_a_csv_of_two_class_columns_and_a_numeric_one_loads_as_three_targets(labelled):
    _, items, path = labelled
    data = load_data(path)
    assert isinstance(data, TabularImages) and data.main_column == "species"
    assert data.classes == list(SPECIES) and data.image_shape == (1, 28, 28)
    assert {n: c.kind for n, c in data.columns.items()} == {"species": "class", "colour": "class", "age": "number"}
    assert (len(data.train), len(data.test)) == (27, 9)  # the split column's
    ages = torch.tensor([it["age"] for it in items if it["split"] == "train"])
    age = data.columns["age"]
    assert abs(age.mean - ages.mean().item()) < 1e-4 and abs(age.std - ages.std().item()) < 1e-4
    back = data.train.targets["age"] * age.std + age.mean  # standardized, and back in years
    assert torch.allclose(back, ages, atol=1e-4)
    few = data.per_class_subsets(9, 3)  # --train-subset / --test-subset keep every column in step
    assert len(few.train) == 9 and len(few.train.targets["age"]) == 9 and len(few.test.targets["colour"]) == 3
    # (NAME:class on a numeric column: tests/test_labels_csv_checks.py; ages of test rows no training row has
    # are refused as a class column)


def test_three_headed_model_trains_end_to_end_and_evaluate_reports_each_target(labelled, tmp_path, capsys):
    _, _, path = labelled
    out = tmp_path / "run"
    code = main(["train", "lenet5_modern", "--data", path, "--epochs", "12", "--loss", "species=1,colour=0.5,age=0.5",
                 "--output", str(out), *FAST])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    last = rows[-1]
    assert {"test_acc", "test_acc_colour", "test_mae_age"} <= set(last)
    species, colour, mae = float(last["test_acc"]), float(last["test_acc_colour"]), float(last["test_mae_age"])
    assert species > 0.8 and colour > 0.8, (species, colour)  # chance: 1/3 and 1/2
    assert mae < 2.0, mae  # years (measured: 1.39 with 27 training pictures); predicting the mean: 2.9
    said = capsys.readouterr().out
    assert "targets: species (main, 3 classes), colour (2 classes), age (number); inputs: image" in said
    assert f"other targets: colour accuracy {colour:.4f}, age MAE {mae:.4g}" in said
    assert main(["evaluate", str(out / "last.pt"), "--output", str(tmp_path / "eval")]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert lines["species"][1:3] == ["class", "accuracy"] and "(main)" in text
    assert float(lines["colour"][3]) == pytest.approx(colour, abs=1e-4)
    assert lines["age"][1:3] == ["number", "MAE"] and float(lines["age"][3]) == pytest.approx(mae, rel=1e-3)
    assert (tmp_path / "eval" / "targets.csv").is_file()
    # predict gives every target of each picture: its colour agrees as often, its age is as far off, as evaluate said
    folder, items, _ = labelled
    tests = [it for it in items if it["split"] == "test"]
    assert main(["predict", str(out / "last.pt"), *(str(folder / it["image"]) for it in tests), "--topk", "1"]) == 0
    said = [line.split("  | ") for line in capsys.readouterr().out.splitlines()]
    assert len(said) == len(tests) and all(len(parts) == 3 for parts in said)
    colours = [parts[1].split() for parts in said]
    ages = [parts[2].split() for parts in said]
    assert all(c[0] == "colour" and c[1] in COLOURS and 0.5 <= float(c[2]) <= 1 for c in colours)
    assert all(a[0] == "age" and len(a) == 2 for a in ages)
    assert sum(c[1] == it["colour"] for c, it in zip(colours, tests)) / len(tests) == pytest.approx(colour, abs=1e-4)
    errors = [abs(float(a[1]) - it["age"]) for a, it in zip(ages, tests)]
    assert sum(errors) / len(errors) == pytest.approx(mae, abs=0.01)
    # Its safetensors export keeps the labels CSV's record: evaluate and predict read every target from it too.
    assert main(["export", str(out / "last.pt"), "--format", "safetensors", "--out", str(tmp_path / "sf")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "sf"), "--data", path, "--output", str(tmp_path / "eval-sf")]) == 0
    again = capsys.readouterr().out
    assert [line for line in again.splitlines() if line.startswith("  ")] == \
        [line for line in text.splitlines() if line.startswith("  ")]
    assert main(["predict", str(tmp_path / "sf"), str(folder / tests[0]["image"]), "--topk", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["  | ".join(said[0])]
    # features: every target of each item beside its features, numbers in their own units
    assert main(["features", str(out), "--out", str(tmp_path / "f.npz")]) == 0
    saved = np.load(tmp_path / "f.npz")
    assert saved["test_labels"].tolist() == [it["s"] for it in tests]
    assert saved["test_target_colour"].tolist() == [it["c"] for it in tests]
    assert saved["target_colour_classes"].tolist() == list(COLOURS)
    assert saved["test_target_age"] == pytest.approx([it["age"] for it in tests])
    assert len(saved["train_target_age"]) == len(saved["train_features"]) == len(items) - len(tests)
    # another labels CSV, without a split column, is scored whole, as another image folder without test/ is
    other = write_csv(folder / "other.csv", ["image", "species", "colour", "age"],
                      [[it[k] for k in ("image", "species", "colour", "age")] for it in items])
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", other, "--output", str(tmp_path / "eval-other")]) == 0
    assert f"on {other}: {len(items)} test images" in capsys.readouterr().out
    # ... and one class will do: the rows of the foxes alone, scored against the checkpoint's classes
    foxes = [it for it in items if it["species"] == "fox"]
    fox_csv = write_csv(folder / "foxes.csv", ["image", "species", "colour", "age"],
                        [[it[k] for k in ("image", "species", "colour", "age")] for it in foxes])
    assert main(["evaluate", str(out), "--data", fox_csv, "--output", str(tmp_path / "eval-fox")]) == 0
    said = capsys.readouterr().out
    assert f"on {fox_csv}: {len(foxes)} test images" in said
    per_class = (tmp_path / "eval-fox" / "per_class.csv").read_text()
    assert per_class.splitlines()[1:] and all(line.split(",")[0] in SPECIES for line in per_class.splitlines()[1:])


def test_monitor_takes_a_targets_accuracy_or_mae_and_best_pt_follows_it(labelled, tmp_path):
    _, _, path = labelled
    data = load_data(path)
    config = TrainConfig(model="lenet5_modern", data=path, epochs=3, batch_size=8, lr=0.01, threads=1, progress=False,
                         monitor="test_mae_age", output=str(tmp_path / "mae"))
    result = Trainer(config, data=data).fit()
    maes = [row["test_mae_age"] for row in result.history]
    assert result.best_epoch == maes.index(min(maes)) + 1
    Trainer(dataclasses.replace(config, monitor="test_acc_colour", output=str(tmp_path / "c")), data=data)
    with pytest.raises(FieldError, match="monitor test_acc_age is not a figure of this run; it has test_acc, "
                                         "test_loss, test_acc_colour, test_mae_age"):
        Trainer(dataclasses.replace(config, monitor="test_acc_age", output=str(tmp_path / "a")), data=data)


def test_a_two_image_model_trains_on_pairs(labelled, tmp_path, capsys):
    folder, items, _ = labelled
    # The species is in the first image, the colour only in the second one (an item's other picture).
    rows = [[it["image"], items[(i + 1) % len(items)]["image"], it["species"],
             items[(i + 1) % len(items)]["colour"], it["split"]] for i, it in enumerate(items)]
    path = write_csv(folder / "pairs.csv", ["image", "image2", "species", "colour", "split"], rows)
    data = load_data(path, inputs=["image", "image2"])
    assert data.image_shape == (2, 28, 28) and data.image_columns == ("image", "image2")
    out = tmp_path / "pairs"
    assert main(["train", "lenet5_modern", "--data", path, "--inputs", "image,image2", "--epochs", "12",
                 "--output", str(out), *FAST]) == 0
    last = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))[-1]
    assert float(last["test_acc"]) > 0.8 and float(last["test_acc_colour"]) > 0.8, last
    model = torch.load(out / "last.pt", weights_only=False)
    assert model["model_options"]["image_inputs"] == 2 and model["in_chans"] == 2
    capsys.readouterr()
    assert main(["predict", str(out / "last.pt"), str(folder / "0.png")]) == 2  # one image a file: refused
    assert "takes image, image2 of each item" in capsys.readouterr().err


def test_an_image_and_numeric_inputs_train_a_target_only_the_numbers_tell(labelled, tmp_path):
    folder, items, _ = labelled
    rows = [[it["image"], it["species"], "tall" if it["age"] > 6.5 else "short", it["age"], it["split"]]
            for it in items]
    # The height is a number input (the picture's bar is not the height here: only the vector tells).
    for row, it in zip(rows, items):
        Image.fromarray(picture(it["s"], it["c"], 0)).save(folder / f"flat{row[0]}")
        row[0] = f"flat{row[0]}"
    path = write_csv(folder / "vector.csv", ["image", "species", "size", "height", "split"], rows)
    out = tmp_path / "vector"
    assert main(["train", "lenet5_modern", "--data", path, "--inputs", "image,height", "--epochs", "12",
                 "--output", str(out), *FAST]) == 0
    last = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))[-1]
    assert float(last["test_acc_size"]) > 0.7, last  # (measured: 8 of 9 test items; chance: about a half)
    assert main(["evaluate", str(out / "last.pt"), "--output", str(tmp_path / "eval")]) == 0


def test_the_multi_input_model_shares_its_backbone_and_rebuilds_from_its_options():
    model = create_model("multitask", num_classes=3, in_chans=2, backbone="lenet5_modern",
                         tasks={"colour": 2, "age": 1}, image_inputs=2, vector_inputs=2).eval()
    x, v = torch.randn(4, 2, 28, 28), torch.randn(4, 2)
    outputs = model.forward_outputs((x, v))
    assert outputs["main"].shape == (4, 3) and outputs["colour"].shape == (4, 2) and outputs["age"].shape == (4, 1)
    assert torch.equal(outputs["main"], model((x, v)))
    swapped = model.forward_features((torch.cat([x[:, 1:], x[:, :1]], 1), v))
    width = model.backbone.num_features
    first, second = model.forward_features((x, v))[:, :width], swapped[:, width:2 * width]
    assert torch.allclose(first, second, atol=1e-6)  # one backbone for both images
    again = create_model("multitask", num_classes=3, in_chans=2, **model.model_options)
    again.load_state_dict(model.state_dict())


def test_a_semicolon_or_tab_csv_loads_like_the_comma_one(labelled):
    """The delimiter is the header line's: Excel writes semicolons (and decimal commas) in many locales. A BOM,
    CRLF line ends and quoted cells holding the delimiter are read as before."""
    folder, items, path = labelled
    keys = ("image", "species", "colour", "age", "split")
    targets = ["species", "colour", "age"]  # (the note column is no target)
    comma = load_data(path, targets=targets)
    semicolon = "".join(f'"{it["image"]}";{it["species"]};{it["colour"]};{str(it["age"]).replace(".", ",")};'
                        f'{it["split"]};"a;b"\r\n' for it in items)
    (folder / "semicolon.csv").write_bytes(f"\ufeff{';'.join(keys)};note\r\n{semicolon}".encode())
    tab = "".join("\t".join(str(it[k]) for k in keys) + "\n" for it in items)
    (folder / "tab.csv").write_text("\t".join(keys) + "\n" + tab)
    for name in ("semicolon.csv", "tab.csv"):
        data = load_data(str(folder / name), targets=targets)
        assert {n: c.kind for n, c in data.columns.items()} == {"species": "class", "colour": "class", "age": "number"}
        assert (len(data.train), len(data.test)) == (27, 9) and data.classes == comma.classes
        assert torch.equal(data.train.images, comma.train.images) and torch.equal(data.test.labels, comma.test.labels)
        assert all(torch.equal(data.train.targets[k], comma.train.targets[k]) for k in ("colour", "age")), name
        assert data.columns["age"] == comma.columns["age"]  # 3,5 is 3.5 in the semicolon file


def test_nan_and_inf_cells_of_a_numeric_column_are_missing_numbers_but_nan_may_be_a_class(labelled):
    folder, items, _ = labelled
    header = ["image", "species", "keeper", "age", "split"]
    rows = [[it["image"], it["species"], ("nan", "inf", "bob")[it["s"]], it["age"], it["split"]] for it in items]
    data = load_data(write_csv(folder / "keepers.csv", header, rows))  # names, two of them nan and inf: classes
    assert data.main_column == "species" and data.columns["keeper"].classes == ("bob", "inf", "nan")
    assert data.columns["age"].kind == "number"
    for k, cell in ((2, "NaN"), (5, "inf"), (9, "-inf"), (20, "nan")):  # (many: not a column of classes)
        rows[k][3] = cell
    with pytest.raises(DataError, match="nan_ages.csv line 4, column 'age': 'NaN' is not a finite number; "
                                        "every row needs one"):
        load_data(write_csv(folder / "nan_ages.csv", header, rows))


def test_both_splits_need_rows(labelled):
    folder, items, path = labelled
    rows = [[it[k] for k in ("image", "species", "colour", "age")] for it in items]
    all_train = write_csv(folder / "all_train.csv", ["image", "species", "colour", "age", "split"],
                          [[*r, "train"] for r in rows])
    with pytest.raises(DataError, match="all_train.csv yields 36 training and 0 test rows; both splits need rows "
                                        r"\(mark some rows test in its column 'split'\)"):
        load_data(all_train)
    no_split = write_csv(folder / "no_split.csv", ["image", "species", "colour", "age"], rows)
    assert len(load_data(no_split).test) == 3  # a tenth of each species
    with pytest.raises(DataError, match="yields 36 training and 0 test rows; .*raise `val_fraction` from 0"):
        load_data(no_split, val_fraction=0)


def test_an_image_is_listed_once_but_pairs_may_share_an_image(labelled):
    folder, items, _ = labelled
    header = ["image", "species", "colour", "split"]
    rows = [[it["image"], it["species"], it["colour"], it["split"]] for it in items]
    again = write_csv(folder / "again.csv", header, [*rows, ["./0.png", "dog", "blue", "test"]])
    with pytest.raises(DataError, match=r"again.csv lines 2 and 38 both list image 0.png, with different species "
                                        r"\(cat, dog\), split \(train, test\); list each image once"):
        load_data(again)
    twice = write_csv(folder / "twice.csv", header, [*rows, rows[4]])
    with pytest.raises(DataError, match=r"twice.csv lines 6 and 38 list image 4.png twice \(the same row\)"):
        load_data(twice)
    # Two images an item: an image may be in several pairs, a pair only once.
    pairs = [[it["image"], items[(i + 1) % 36]["image"], it["species"], it["split"]] for i, it in enumerate(items)]
    pairs.append(["0.png", "5.png", "cat", "train"])
    header = ["image", "image2", "species", "split"]
    assert len(load_data(write_csv(folder / "pairs2.csv", header, pairs), inputs=["image", "image2"]).train) == 28
    with pytest.raises(DataError, match="lines 2 and 39 both list the images 0.png, 1.png, with different species"):
        load_data(write_csv(folder / "pair_again.csv", header, [*pairs, ["0.png", "1.png", "dog", "train"]]),
                  inputs=["image", "image2"])


# The CSV's bad inputs (a missing file or column, a typo, an empty cell...) are rows of tests/test_bad_inputs.py.


def test_a_labels_csv_refuses_what_cannot_work():
    with pytest.raises(DataError, match="not a labels CSV|not a .csv"):
        load_data("digits", targets=["species"])


def test_fine_tuning_a_one_head_run_on_several_columns_is_refused_naming_them(labelled, tmp_path, capsys):
    """Before, the extra columns were dropped in silence and evaluate/predict of the run died on KeyError."""
    _, _, path = labelled
    run = tmp_path / "one"
    assert main(["train", "lenet5_modern", "--data", path, "--targets", "species", "--epochs", "1",
                 "--output", str(run), *FAST]) == 0
    capsys.readouterr()
    assert main(["finetune", str(run), "--data", path, "--epochs", "1", "--output", str(tmp_path / "ft"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("convolab finetune: error: the model has no output for the labels CSV's columns colour, age (a "
                   "checkpoint's or published weights' model keeps its heads); give --targets species to learn its "
                   "main target alone, or train a model of every column with `convolab train MODEL` (without "
                   "--pretrained)"), err  # (the line names --pretrained since train takes it, 2026-11-30)
    assert not (tmp_path / "ft" / "last.pt").exists()
    assert main(["finetune", str(run), "--data", path, "--targets", "species", "--epochs", "1",
                 "--output", str(tmp_path / "ft2"), *FAST]) == 0


def test_finetune_refuses_a_head_that_does_not_fit_its_column_before_any_folder(labelled, tmp_path, capsys):
    """A checkpoint's 2-class colour head fine-tuned on a CSV of 3 colours: one line naming the column (before:
    an IndexError mid-epoch, and a folder holding only config.json)."""
    folder, items, path = labelled
    run = tmp_path / "run"
    assert main(["train", "lenet5_modern", "--data", path, "--targets", "species,colour", "--epochs", "1",
                 "--output", str(run), *FAST]) == 0
    rows = [[it["image"], it["species"], "green" if i % 3 == 0 else it["colour"], it["split"]]
            for i, it in enumerate(items)]
    other = write_csv(folder / "three-colours.csv", ["image", "species", "colour", "split"], rows)
    capsys.readouterr()
    code = main(["finetune", str(run), "--data", other, "--epochs", "1", "--output", str(tmp_path / "ft"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "colour (its class column needs 3, the head has 2)" in err, err
    assert not (tmp_path / "ft").exists()


def test_validation_rows_take_no_part_in_the_numbers_standardization(labelled):
    """--val-fraction holds validation rows out of a CSV's training rows: its numeric targets and inputs are
    standardized again by the rows left to train on (before: by every training row, the validation ones too), in new
    tensors (the loaded data, shared by a comparison's runs, are left as they were)."""
    folder, items, _ = labelled
    path = write_csv(folder / "inputs.csv", ["image", "species", "age", "height", "split"],
                     [[it["image"], it["species"], it["age"], it["age"] * 2 + 1, it["split"]] for it in items])
    data = load_data(path, inputs=["image", "height"])
    before = (data.columns["age"], data.train.targets["age"].clone(), data.train.vectors.clone())
    held = data.with_validation(0.34)
    assert len(held.train) + len(held.test) == 27 and len(held.unseen_test) == 9
    for name, column, values in (("age", held.columns["age"], lambda s: s.targets["age"]),
                                 ("height", held.vector_columns[0], lambda s: s.vectors[:, 0])):
        raw = {k: values(split).double() * column.std + column.mean
               for k, split in (("train", held.train), ("test", held.test), ("unseen", held.unseen_test))}
        assert abs(column.mean - raw["train"].mean().item()) < 1e-4, name
        assert abs(column.std - raw["train"].std().item()) < 1e-4, name
        assert abs(values(held.train).double().mean().item()) < 1e-5  # standardized by the rows it trains on
        # every row's number is its own still, in its column's units
        ages = torch.tensor([it["age"] for it in items if it["split"] == "test"], dtype=torch.float64)
        assert torch.allclose(raw["unseen"], ages if name == "age" else ages * 2 + 1, atol=1e-4), name
    assert data.columns["age"] == before[0] and torch.equal(data.train.targets["age"], before[1])
    assert torch.equal(data.train.vectors, before[2])
