"""The targets of a run's outputs besides the main labels: targets derived from the class names
(`--extra-target parity`), or a labels CSV's other columns, each checked against the model's heads."""
from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import nn

from ..data.labels_csv import Column, TabularImages
from ..data.targets import DERIVED_TARGETS, derive_target
from ..errors import ConfigError
from .batches import BatchSource
from .config import TrainConfig


def extra_targets(config: TrainConfig, model: nn.Module, batches: BatchSource, classes: list[str]
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The derived targets of the outputs that have their own (e.g. `parity`), on the device; a labels
    CSV's target columns (class indices, or standardized numbers) for its model's heads."""
    if isinstance(batches.data, TabularImages):
        return table_targets(config, model, batches)
    names = list(config.extra_targets)
    outputs = ("main", *getattr(model, "aux_names", ()))
    for name in names:
        if name not in outputs:
            raise ConfigError(f"`extra_targets` {name}: the model has no output named {name!r} "
                              f"(its outputs: {', '.join(outputs)})")
    for name in getattr(model, "task_classes", {}):
        if name not in names:
            raise ConfigError(f"the model's output {name!r} predicts its own target: add `extra_targets` {name} "
                              f"(which needs data of {DERIVED_TARGETS[name].needs})"
                              if name in DERIVED_TARGETS else f"the model's output {name!r} learnt a labels CSV's "
                              f"column: give `data` a labels CSV with a {name!r} column")
    train = {name: derive_target(name, batches.train_labels, classes) for name in names}
    test = {name: derive_target(name, batches.test_labels, classes) for name in names}
    return train, test


def table_targets(config: TrainConfig, model: nn.Module, batches: BatchSource
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A labels CSV's targets besides the main one, on the device; what cannot mix with numbers refused, and
    targets the model has no head for (a one-head checkpoint fine-tuned on several columns), and heads without a
    target among its columns (`convolab finetune` drops a labels-CSV run's heads that --targets leaves out)."""
    data: TabularImages = batches.data
    if config.extra_targets:
        raise ConfigError("`extra_targets` derives a target from class names; a labels CSV names its targets "
                          "as columns: use `targets`")
    heads = getattr(model, "task_classes", {})
    missing = [n for n in data.train.targets if n not in getattr(model, "aux_names", ())]
    # a head of another size than its column's (a checkpoint's head of 2 classes, a column of 3 or of numbers)
    wrong = [f"{n} (its {c.kind} column needs {_outputs(c)}, the head has {heads[n]})"
             for n, c in data.columns.items() if n in heads and heads[n] != _outputs(c)]
    # a head of no column (lenet5_two_head's parity, a given model's): nothing of its own to learn or be scored on
    untargeted = [n for n in heads if n not in data.train.targets]
    if untargeted and not missing and not wrong:
        s = "s" if len(untargeted) > 1 else ""
        raise ConfigError(f"the model's head{s} {', '.join(untargeted)} ha{'ve' if s else 's'} no target among the "
                          f"labels CSV's ({', '.join(data.columns)}): a head learns the column of its name; add "
                          f"{'them' if s else 'it'} to `targets`, or give a CSV with {'those columns' if s else 'it'}")
    if missing or wrong:
        what = (f"no output for the labels CSV's column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                if missing else f"heads that do not fit the labels CSV's columns: {', '.join(wrong)}")
        raise ConfigError(f"the model has {what} (a checkpoint's or published weights' model keeps its heads); "
                          f"give `targets` {data.main_column} to learn its main target alone, or train a model of "
                          "every column with `convolab train MODEL` (without `pretrained`)")
    numbers = data.train.vectors is not None or any(c.kind == "number" for c in data.columns.values())
    if numbers and (config.mixup or config.cutmix):
        raise ConfigError("`mixup` and `cutmix` mix class labels; this labels CSV has numeric targets or inputs")
    if len(data.image_columns) > 1 and config.auto_augment != "none":
        raise ConfigError(f"`auto_augment` {config.auto_augment} draws its operations image by image; this labels "
                          f"CSV gives each item {len(data.image_columns)} images ({', '.join(data.image_columns)}), "
                          "which it would not keep alike: leave it out (`augment` crops and flips an item's images "
                          "alike)")
    if data.train.vectors is not None and config.tta == "flip":
        raise ConfigError("`tta` flip needs a model of images only; this labels CSV has numeric inputs")
    device = batches.train_labels.device
    return ({n: t.to(device) for n, t in data.train.targets.items()},
            {n: t.to(device) for n, t in data.test.targets.items()})


def output_target(name: str, labels: torch.Tensor, targets: Mapping[str, torch.Tensor] | None,
                  task_heads: Collection[str]) -> torch.Tensor:
    """What output `name` learns and is scored against: its own target (a task head's: the derived target or the
    labels CSV's column of its name), else the main labels (an auxiliary head's: it predicts them). A task head
    without its own is an error, never trained or scored against the main labels (`extra_targets` refuses it)."""
    if targets and name in targets:
        return targets[name]
    if name in task_heads:
        raise ConfigError(f"the model's head {name!r} has no target of its own (the run's: "
                          f"{', '.join(targets or {}) or 'none'}): it is never trained on the main labels")
    return labels


def _outputs(column: Column) -> int:
    """How many outputs a head of this column has: one per class, one for a number."""
    return len(column.classes) if column.kind == "class" else 1


__all__ = ["extra_targets", "output_target", "table_targets"]
