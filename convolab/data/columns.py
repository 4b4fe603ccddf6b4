"""A labels CSV's target and numeric input columns: a column's kind, its classes or its training mean and std, and
its numbers standardized again by other training rows."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Column:
    """A target or numeric input column: its kind, its classes (class) or training mean and std (number)."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    def to_dict(self) -> dict:
        """For a checkpoint: the kind with its classes (class) or its training mean and std (number); no name."""
        if self.kind == "class":
            return {"kind": "class", "classes": list(self.classes)}
        return {"kind": "number", "mean": self.mean, "std": self.std}


def restandardized(column: Column, splits: list[torch.Tensor]) -> tuple[Column, list[torch.Tensor]]:
    """`column` standardized by the first of `splits` (the training rows'), and each split's numbers so."""
    raw = [split.double() * column.std + column.mean for split in splits]
    mean, std = float(raw[0].mean()), float(raw[0].std()) if len(raw[0]) > 1 else 0.0
    std = std if std > 0 else 1.0
    return dataclasses.replace(column, mean=mean, std=std), [((r - mean) / std).float() for r in raw]


__all__ = ["Column", "restandardized"]
