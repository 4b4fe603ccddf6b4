"""Named training recipes: a set of option values a run takes unless the user gives them.

`fast` is the recipe behind the GPU benchmark (benchmarks/gpu.py): a short one-cycle schedule
(Smith 2018) with He et al.'s batch and rate for CIFAR (128 images, 0.1), SGD with Nesterov momentum,
weight decay 5e-4 on weights only, a linear warm-up of 2 epochs then a linear decay to zero, label
smoothing 0.1, the padded crop and flip of He et al., bf16 autocast on a GPU, channels-last, and
test-time augmentation by the mirror image (the mean of the logits of each test image and its mirror).
A batch of 512 at 0.4 ran as fast per image on an H200 but took 4 times fewer steps an epoch and
ended 3 points lower (resnet20: 0.885 after 40 epochs; resnet18: 0.899 after 20).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    values: dict[str, Any] = field(default_factory=dict)  # TrainConfig field -> value


RECIPES: dict[str, Recipe] = {
    "fast": Recipe(
        "fast",
        "CIFAR-style short schedule: SGD+Nesterov lr 0.1, batch 128, 30 epochs, 2 warm-up then linear "
        "decay to 0, weight decay 5e-4, label smoothing 0.1, crop+flip, test-time flip",
        {"epochs": 30, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
         "weight_decay": 5e-4, "decay_norm_and_bias": False, "schedule": "onecycle", "warmup_epochs": 2.0,
         "label_smoothing": 0.1, "augment": "crop-flip", "channels_last": True, "tta": "flip"},
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"--recipe {name!r} is not a recipe; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_values(name: str | None, given: set[str] = frozenset()) -> dict[str, Any]:
    """The recipe's values for the options not in `given` (what the user set stays set)."""
    if name is None:
        return {}
    return {k: v for k, v in get_recipe(name).values.items() if k not in given}
