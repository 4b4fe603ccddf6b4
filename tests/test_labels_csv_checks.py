"""A labels CSV's checks on what its columns hold: a class target needs two classes on the training rows (one
will do when its rows are scored), an image column is not a target, a head's name must be free on the model,
numbers must stay finite once averaged, a column is named once, the text is UTF-8 (or UTF-16 with a BOM), and
--skip-bad-images, which skips a folder's files, is refused for a CSV that names each of its files."""
from __future__ import annotations

import pytest
from PIL import Image

from convolab.data import load_data, load_labels_csv
from convolab.errors import DataError

HEADER = ["image", "species", "colour", "age", "split"]


def rows(count: int = 8) -> list[list[str]]:
    """`count` rows: species cat/dog alternating, colour red/blue by pairs, age 3 + i, every fourth a test row."""
    return [[f"{i}.png", ("cat", "dog")[i % 2], ("red", "blue")[i // 2 % 2], str(3 + i),
             "test" if i % 4 == 3 else "train"] for i in range(count)]


def write(folder, header: list[str], body: list[list[str]], encoding: str = "utf-8") -> str:
    """labels.csv in `folder`, with a grey 8 px image for every `N.png` it names."""
    for r in body:
        for cell in r:
            if cell.endswith(".png") and not (folder / cell).exists():
                Image.new("L", (8, 8), 10 * len(cell)).save(folder / cell)
    path = folder / "labels.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *body]) + "\n", encoding=encoding)
    return str(path)


def test_rows_scored_whole_may_hold_one_class(tmp_path):
    body = [r[:4] for r in rows() if r[1] == "cat"]
    data = load_labels_csv(write(tmp_path, HEADER[:4], body), targets=["species", "colour"], whole=True)
    assert data.columns["species"].classes == ("cat",) and len(data.test) == 4


def test_a_target_column_of_image_paths_is_refused(tmp_path):
    body = [[*r, f"{(i + 1) % 8}.png"] for i, r in enumerate(rows())]
    path = write(tmp_path, [*HEADER, "image2"], body)
    with pytest.raises(DataError, match="`targets` names image2, a column of image files: a target is a class or "
                                        "a number, not an image"):
        load_labels_csv(path, targets=["species", "image2"])


def test_an_image_path_column_marked_class_is_a_class_target(tmp_path):
    body = [[*r, ("a.png", "b.png")[i % 2]] for i, r in enumerate(rows())]
    data = load_labels_csv(write(tmp_path, [*HEADER, "file2"], body), targets=["species", "file2:class"])
    assert data.columns["file2"].classes == ("a.png", "b.png")


def test_a_secondary_class_column_of_one_training_value_is_refused(tmp_path):
    body = [[*r[:2], "blue" if r[4] == "test" else "red", *r[3:]] for r in rows()]
    with pytest.raises(DataError, match="class column 'colour' of .*labels.csv has one value on its training rows "
                                        r"\('red'\): nothing to learn"):
        load_labels_csv(write(tmp_path, HEADER, body))


def test_a_secondary_class_only_in_test_rows_is_refused(tmp_path):
    body = rows()
    body[3][2] = "green"  # a test row
    with pytest.raises(DataError, match="column 'colour' has classes only in test rows: 'green'"):
        load_labels_csv(write(tmp_path, HEADER, body))


@pytest.mark.parametrize("name", ["type", "training", "float", "half", "fc", "vector", "backbone", "main_name"])
def test_a_column_named_like_a_model_attribute_is_refused(tmp_path, name):
    path = write(tmp_path, [*HEADER[:2], name, *HEADER[3:]], rows())
    with pytest.raises(DataError, match=f"column '{name}' of .*labels.csv names a model output, and the model has an "
                                        f"attribute '{name}' already: rename the column"):
        load_labels_csv(path)


def test_skip_bad_images_is_refused_for_a_labels_csv(tmp_path):
    path = write(tmp_path, HEADER, rows())
    with pytest.raises(DataError, match="`skip_bad_images` skips the unreadable files of an image folder or tar; "
                                        "the labels CSV .* names each of its files: fix or remove the row"):
        load_data(path, skip_bad_images=True)


def test_numbers_too_large_for_a_std_are_refused(tmp_path):
    body = [[*r[:3], f"{3 + i}e301", r[4]] for i, r in enumerate(rows())]
    with pytest.raises(DataError, match="column 'age' of .*labels.csv: its numbers are too large for a mean and std"):
        load_labels_csv(write(tmp_path, HEADER, body))


def test_a_csv_not_in_utf8_says_to_save_it_as_utf8(tmp_path):
    body = rows()
    body[0][1] = "chat_é"
    body[2][1] = "chat_é"
    with pytest.raises(DataError, match=r"labels.csv is not UTF-8 text .*: save it as UTF-8 \(Excel: CSV UTF-8\)"):
        load_labels_csv(write(tmp_path, HEADER, body, encoding="cp1252"))


def test_a_utf16_csv_with_its_bom_is_read(tmp_path):
    body = rows()
    body[0][1] = body[2][1] = "chat_é"
    data = load_labels_csv(write(tmp_path, HEADER, body, encoding="utf-16"))
    assert data.columns["species"].classes == ("cat", "chat_é", "dog")


@pytest.mark.parametrize(("flag", "names"), [("inputs", "image,image"), ("targets", "species,species")])
def test_a_column_named_twice_is_refused(tmp_path, flag, names):
    path = write(tmp_path, HEADER, rows())
    with pytest.raises(DataError, match=f"`{flag}` names '{names.split(',')[1]}' twice: name each column once"):
        load_labels_csv(path, **{flag: names.split(",")})


def test_a_numeric_column_marked_class_is_a_class_target(tmp_path):
    body = [[*r[:3], str(3 + i % 2), r[4]] for i, r in enumerate(rows())]
    data = load_labels_csv(write(tmp_path, HEADER, body), targets=["species", "age:class"])
    assert data.columns["age"].kind == "class" and data.columns["age"].classes == ("3", "4")
