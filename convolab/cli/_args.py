"""Argument types shared by the verbs: each rejects a bad value with a message saying why."""
from __future__ import annotations

import argparse

# What an empty CHECKPOINT argument is told to give instead (evaluate, features, export, predict, finetune).
CHECKPOINT = "a checkpoint file or run folder (or a model name with --pretrained)"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def class_count(text: str) -> int:
    """--num-classes: 0 is the model without its classifier (its pooled features), as create_model takes it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (0: the features, no classifier), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def input_size(text: str) -> tuple[int, int, int]:
    """`C,H,W` (or `CxHxW`) -> (C, H, W)."""
    parts = text.replace("x", ",").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError("expected C,H,W or CxHxW with positive integers (e.g. 3,224,224 or "
                                         f"3x224x224), got {text!r}")
    return values  # type: ignore[return-value]


def nonempty(give: str):
    """The argparse type of a value that must name something (a file, a folder, a data set, a name): "" is
    refused with what to give (a typo, or a shell variable left unset), not read as the current folder or as
    the option left out. `give` completes "give ...", e.g. "a folder, or leave the option out"."""

    def parse(text: str) -> str:
        if text == "":
            raise argparse.ArgumentTypeError(f"is empty; give {give}")
        return text

    parse.__name__ = "str"  # argparse names the type in some messages
    return parse
