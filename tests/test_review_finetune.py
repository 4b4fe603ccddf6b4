"""Faults a tester of fine-tuning, features and predict reproduced: a fine-tuned labels-CSV model kept a head
of other class names (read by index, as other classes), and `lr-find` left an empty folder when refused."""
from __future__ import annotations

import pytest
from PIL import Image

from convolab.cli import main
from convolab.data import load_data

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


WORDS = "zero one two three four five six seven eight nine".split()  # (digits as words: a class column)


def digits_csv(folder, parity=("even", "odd")) -> str:
    """A labels CSV of 60 digits (8x8 images, 40 train and 20 test): the digit (main) and its parity as these
    names."""
    data = load_data("digits")
    folder.mkdir(exist_ok=True)
    lines = ["image,digit,parity,split"]
    for i in range(60):
        Image.fromarray(data.train.images[i, 0].numpy()).save(folder / f"{i}.png")
        digit = int(data.train.labels[i])
        lines.append(f"{i}.png,{WORDS[digit]},{parity[digit % 2]},{'test' if i % 3 == 0 else 'train'}")
    path = folder / f"labels-{'-'.join(parity)}.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_fine_tuning_a_kept_head_on_a_column_of_other_class_names_is_refused(tmp_path, capsys):
    learnt = digits_csv(tmp_path / "d")
    assert main(["train", "lenet5_modern", "--data", learnt, "--image-size", "28", "--epochs", "1", "--batch-size",
                 "8", "--no-progress", "--output", str(tmp_path / "csv")]) == 0
    renamed = digits_csv(tmp_path / "d", parity=("zeven", "aodd"))  # sorted: aodd, zeven (the head's 0 is even)
    capsys.readouterr()
    code = main(["finetune", str(tmp_path / "csv"), "--data", renamed, "--epochs", "1", "--batch-size", "8",
                 "--no-progress", "--output", str(tmp_path / "ft")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "column 'parity' of" in err and "holds the classes aodd, zeven" in err and "learnt even, odd" in err
    assert main(["finetune", str(tmp_path / "csv"), "--data", learnt, "--epochs", "1", "--batch-size", "8",
                 "--no-progress", "--output", str(tmp_path / "same")]) == 0  # the names it learnt: fine-tuned
