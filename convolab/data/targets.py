"""Extra targets derived from a data set's class names, for models with several task heads
(`--extra-target`; the training engine derives them, `convolab.finetune` re-exports them).

A target is named like the model output that predicts it: `--extra-target parity` gives every
image a second label (even/odd digit) that the output `parity` of e.g. `lenet5_two_head` learns.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import DataError

CIFAR10_VEHICLES = frozenset({"airplane", "automobile", "ship", "truck"})


def _digit_parity(name: str) -> int:
    if not name.isdigit():
        raise ValueError(name)
    return int(name) % 2


def _vehicle(name: str) -> int:
    return int(name in CIFAR10_VEHICLES)


@dataclass(frozen=True)
class DerivedTarget:
    """A coarse label computed from each class name: `classes[of_class(name)]`."""

    name: str
    classes: tuple[str, ...]
    of_class: Callable[[str], int]
    needs: str  # what the data set's classes must be, for the error message


DERIVED_TARGETS = {
    "parity": DerivedTarget("parity", ("even", "odd"), _digit_parity, "digit classes 0-9"),
    "vehicle": DerivedTarget("vehicle", ("animal", "vehicle"), _vehicle, "CIFAR-10 class names"),
}


def derive_target(name: str, labels: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """The extra target `name` of every sample, from its main label and the data set's class names."""
    if name not in DERIVED_TARGETS:
        raise DataError(f"unknown extra target {name!r}; known: {', '.join(DERIVED_TARGETS)}")
    target = DERIVED_TARGETS[name]
    try:
        table = torch.tensor([target.of_class(c) for c in classes], dtype=torch.int64)
    except ValueError:
        raise DataError(f"extra target {name!r} needs {target.needs}; this data set's classes are "
                        f"{', '.join(classes[:10])}") from None
    if name == "vehicle" and not set(classes) & CIFAR10_VEHICLES:
        raise DataError(f"extra target 'vehicle' needs {target.needs}; this data set's classes are "
                        f"{', '.join(classes[:10])}")
    return table.to(labels.device)[labels]


__all__ = ["DERIVED_TARGETS", "DerivedTarget", "derive_target"]
