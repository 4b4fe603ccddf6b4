"""Fine-tuning: a trained checkpoint's model (or a model with published weights) with a new head (or only
its layers up to a named stage, under a fresh head), trained on new data by the ordinary engine."""
from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from ..data import ImageData
from ..errors import ConfigError
from ..models import DataConfig
from ..models._features import truncate
from ..training import TrainConfig, Trainer
from ..training.build import load_config_data
from ..training.inference import load_trained_model
from ..training.process import callers_kept

# What suits a backbone trained on ImageNet: it learns at a tenth of the head's rate, and sees its inputs as it
# was trained to (the weights' mean and std, and their input size: finetune_trainer's image_size default).
PRETRAINED_DEFAULTS: dict[str, Any] = {"normalize": "model", "backbone_lr_scale": 0.1}


def pretrained_defaults(config: TrainConfig, given: Collection[str]) -> TrainConfig:
    """`config` with PRETRAINED_DEFAULTS for the options not `given` (a frozen backbone needs no learning rate)."""
    changes = {k: v for k, v in PRETRAINED_DEFAULTS.items() if k not in given}
    if config.freeze_backbone:
        changes.pop("backbone_lr_scale", None)
    return dataclasses.replace(config, **changes)


def finetune_trainer(checkpoint: str | Path | dict[str, Any], config: TrainConfig, until: str | None = None,
                     data: ImageData | None = None) -> Trainer:
    """A Trainer for `checkpoint`'s model, weights loaded, head replaced for `config.data`'s classes.

    `until` keeps only the layers up to that stage (e.g. GoogLeNet's `inception4e`) under global
    pooling and a fresh linear head. Freezing and the backbone's learning-rate scale come from
    `config` (`freeze_backbone`, `backbone_lr_scale`); images are resized to the checkpoint's
    training size and converted to its channels unless `config.image_size` says otherwise. A record of
    published weights (`convolab.pretrained.pretrained_checkpoint`) gives the model the weights' mean and
    std as its own (what `--normalize model` uses); see `pretrained_defaults`.
    """
    with callers_kept():  # (the new head's seeded draws, and the model's dtype, leave the caller's as they were)
        if config.model_options:
            raise ConfigError("fine-tuning rebuilds the checkpoint's own model; --model-option is not taken")
        loaded = load_trained_model(checkpoint)
        ckpt, model = loaded.checkpoint, loaded.model
        if ckpt.get("weights"):  # published weights: their statistics are the model's
            model.data_config = DataConfig((int(ckpt["in_chans"]), *map(int, ckpt["image_size"])),
                                           tuple(ckpt["mean"]), tuple(ckpt["std"]))
        source = str(ckpt.get("weights") or ckpt.get("source")) if isinstance(checkpoint, dict) else str(checkpoint)
        if data is None:
            data = load_config_data(config)  # (its subsets too)
        check_kept_heads(ckpt, data, source)
        options = dict(ckpt.get("model_options", {}))
        torch.manual_seed(config.seed)  # the new head's initial weights: the same for the same seed
        if until is not None:
            if options.get("until") is not None:
                raise ConfigError(f"{source} is already cut at {options['until']!r}; "
                                  "fine-tune it without --until")
            model = truncate(model, until, num_classes=data.num_classes)
            options["until"] = until  # create_model(..., until=...) rebuilds this network from the new checkpoint
        else:
            model.reset_classifier(data.num_classes)
        model.train()
        config = dataclasses.replace(
            config, model=str(ckpt["model_name"]), model_options=options, init_from=source,
            image_size=config.image_size or int(ckpt["image_size"][0]))
        return Trainer(config, data=data, model=model)


def check_kept_heads(checkpoint: dict[str, Any], data: Any, source: str) -> None:
    """The heads a fine-tuned model keeps (a labels CSV's columns besides its main one) predict the classes
    they learnt, in their order: a column of other class names would be read by index, as other classes."""
    learnt = (checkpoint.get("table") or {}).get("targets", {})
    for name, column in getattr(data, "columns", {}).items():
        kept = learnt.get(name)
        if name == data.main_column or kept is None or column.kind != "class" or kept.get("kind") != "class":
            continue
        # (a head of another size than its column is refused as such when the targets are read)
        if len(column.classes) == len(kept["classes"]) and list(column.classes) != list(kept["classes"]):
            raise ConfigError(f"column {name!r} of {data.name} holds the classes {', '.join(column.classes)}, but "
                              f"{source}'s head {name!r} learnt {', '.join(kept['classes'])}, which it keeps: name "
                              f"them as it learnt them, or give --targets {data.main_column} to fine-tune the main "
                              "target alone")


__all__ = ["PRETRAINED_DEFAULTS", "check_kept_heads", "finetune_trainer", "pretrained_defaults"]
