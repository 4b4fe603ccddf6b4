"""Named training recipes: a set of option values a run takes unless the user gives them.

`fast` is the recipe behind the GPU benchmark (benchmarks/gpu.py): the short, large-batch schedule of
the DAWNBench-era CIFAR-10 runs (Page 2018, "How to train your ResNet"; Smith 2018, one-cycle) with
the parts convolab has: SGD with Nesterov momentum at a peak rate of 0.4 for a batch of 512 (He et
al.'s 0.1 per 128, scaled linearly as Goyal et al. 2017), weight decay 5e-4 on weights only, a
linear warm-up of 2 epochs then a linear decay to zero, label smoothing 0.1, the padded crop and
flip of He et al., bf16 autocast on a GPU, channels-last, and test-time augmentation by the mirror
image (the mean of the logits of each test image and its mirror).

Measured on one H200 (benchmarks/gpu.py, the CIFAR-10 JPEG tar): resnet20, 40 epochs, 0.8853 in
84 s from the command's start (cold image cache); resnet18 with its CIFAR stem, 20 epochs, 0.8993
in 49 s. Short of the papers' 91.25% and of 94%: see the README's GPU section. A batch of 128 at
0.1 was no better per epoch (resnet18, 15 epochs: 0.8946) and 4 times slower there, where a step
cost the host about 11 ms whatever the batch.
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
        "CIFAR-style short schedule: SGD+Nesterov lr 0.4, batch 512, 40 epochs, 2 warm-up then linear "
        "decay to 0, weight decay 5e-4, label smoothing 0.1, crop+flip and test-time flip (colour images; grey "
        "digits neither: a mirrored 2 is not a 2)",
        {"epochs": 40, "batch_size": 512, "optimizer": "sgd", "lr": 0.4, "momentum": 0.9, "nesterov": True,
         "weight_decay": 5e-4, "decay_norm_and_bias": False, "schedule": "onecycle", "warmup_epochs": 2.0,
         "label_smoothing": 0.1, "augment": "auto", "channels_last": True, "tta": "auto"},
    ),
    # He et al. 2015, section 4.2: "a weight decay of 0.0001 and momentum of 0.9 ... mini-batch size of 128 ... We
    # start with a learning rate of 0.1, divide it by 10 at 32k and 48k iterations, and terminate training at 64k
    # iterations"; 4-pixel padding, a 32x32 crop or its flip. 164 epochs of the 50,000 images at 390 steps each are
    # 63,960 iterations, and multistep divides at 50% and 75% of them. `convolab reproduce degradation` trains so.
    "he-cifar": Recipe(
        "he-cifar",
        "He et al.'s CIFAR-10 ResNets (2015, section 4.2): SGD lr 0.1, momentum 0.9, batch 128, 164 epochs (64k "
        "iterations), lr / 10 at 50% and 75% of the steps (32k and 48k), weight decay 1e-4 on every parameter, no "
        "warm-up (ResNet-110's: add `warmup_epochs` 1 `warmup_mode` constant), padded crop + flip",
        {"batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
         "decay_norm_and_bias": True, "schedule": "multistep", "warmup_epochs": 0, "epochs": 164,
         "augment": "crop-flip"},
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"`recipe` {name!r} is not a recipe; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def unapplied(name: str, values: dict[str, Any], defaults: dict[str, Any]) -> str | None:
    """What to say of a config that names the recipe `name` but holds none of the values it sets apart from the
    defaults (`TrainConfig(recipe="fast")` from Python, which takes the values given it: config.json named a recipe
    the run never trained with), or None."""
    own = {k: v for k, v in get_recipe(name).values.items() if v != defaults[k]}
    if own and all(values[k] == defaults[k] for k in own):
        return (f"{name!r} is named, but none of its values ({', '.join(f'{k}={v!r}' for k, v in own.items())}) is "
                f"in these options: a TrainConfig takes the values given it; build it with "
                f"TrainConfig.from_recipe({name!r}, ...), whose options override the recipe's")
    return None


def recipe_values(name: str | None, given: set[str] = frozenset()) -> dict[str, Any]:
    """The recipe's values for the options not in `given` (what the user set stays set)."""
    if name is None:
        return {}
    return {k: v for k, v in get_recipe(name).values.items() if k not in given}
