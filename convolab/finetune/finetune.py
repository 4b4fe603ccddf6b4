"""Fine-tuning: a trained checkpoint's model (or a model with published weights) with a new head (or only
its layers up to a named stage, under a fresh head), trained on new data by the ordinary engine."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import ImageData, TabularImages
from ..data.labels_csv import _split_spec, _Table
from ..data.names import same_form
from ..errors import ConfigError, DataError
from ..models import DataConfig
from ..models._features import truncate
from ..pretrained import pretrained_checkpoint
from ..training import TrainConfig, Trainer
from ..training.inference import load_trained_model, run_config
from ..training.process import callers_kept
from ..training.run_data import load_config_data

log = logging.getLogger("convolab")

# What suits a backbone trained on ImageNet: it learns at a tenth of the head's rate, and sees its inputs as it
# was trained to (the weights' mean and std, and their input size: finetune_trainer's image_size default).
PRETRAINED_DEFAULTS: dict[str, Any] = {"normalize": "model", "backbone_lr_scale": 0.1}
# What `train MODEL --pretrained` (and `compare`, `lr-find`) add to the run's own recipe: the weights' statistics (and
# their input size); every layer learns at the run's rate, as timm's `train.py --pretrained` trains them.
TRAIN_PRETRAINED_DEFAULTS: dict[str, Any] = {"normalize": "model"}


def pretrained_defaults(config: TrainConfig, given: Collection[str], whole: bool = False) -> TrainConfig:
    """`config` with PRETRAINED_DEFAULTS (`whole`: TRAIN_PRETRAINED_DEFAULTS, the network trained whole) for the
    options not `given` (a frozen backbone needs no learning rate)."""
    defaults = TRAIN_PRETRAINED_DEFAULTS if whole else PRETRAINED_DEFAULTS
    changes = {k: v for k, v in defaults.items() if k not in given}
    if config.freeze_backbone:
        changes.pop("backbone_lr_scale", None)
    return dataclasses.replace(config, **changes)


def finetune_trainer(checkpoint: str | Path | dict[str, Any], config: TrainConfig, until: str | None = None,
                     data: ImageData | None = None) -> Trainer:
    """A Trainer for `checkpoint`'s model, weights loaded, head replaced for `config.data`'s classes (see
    `finetune_parts`)."""
    with callers_kept():
        return Trainer(*finetune_parts(checkpoint, config, until, data))


def pretrained_trainer(config: TrainConfig, data: ImageData | None = None, pretrained: bool | str = True) -> Trainer:
    """A new run of `config.model` from its published weights (`pretrained`: True, "torchvision", "timm" or a weights
    name, as `create_model`'s), under a new head for the data's classes, every layer trained by the run's own recipe
    unless `config` freezes the backbone: `convolab train MODEL --pretrained` and each run of `convolab compare
    --pretrained` (after `pretrained_defaults(config, given, whole=True)`). config.json records the weights as
    `init_from`; `--resume` reads last.pt, never the weights."""
    check_config(config, "TrainConfig(model=NAME, data=...) of the model and the data to train on")
    return finetune_trainer(pretrained_checkpoint(config.model, pretrained), config, data=data)


def finetune_parts(checkpoint: str | Path | dict[str, Any], config: TrainConfig, until: str | None = None,
                   data: ImageData | None = None) -> tuple[TrainConfig, ImageData, nn.Module]:
    """The config, data and model of a Trainer for `checkpoint`'s model, weights loaded, head replaced for
    `config.data`'s classes (`convolab lr-find MODEL --pretrained` tests the rates of such a run).

    `until` keeps only the layers up to that stage (e.g. GoogLeNet's `inception4e`) under global
    pooling and a fresh linear head. Freezing and the backbone's learning-rate scale come from
    `config` (`freeze_backbone`, `backbone_lr_scale`); images are resized to the checkpoint's
    training size and converted to its channels unless `config.image_size` says otherwise. A record of
    published weights (`convolab.pretrained.pretrained_checkpoint`) gives the model the weights' mean and
    std as its own (what `--normalize model` uses); see `pretrained_defaults`.
    """
    check_config(config)  # (a model's name given for it: before the checkpoint is read)
    with callers_kept():  # (the new head's seeded draws, and the model's dtype, leave the caller's as they were)
        if config.model_options:
            raise ConfigError("fine-tuning rebuilds the checkpoint's own model; `model_options` is not taken")
        loaded = load_trained_model(checkpoint)
        ckpt, model = loaded.checkpoint, loaded.model
        if ckpt.get("weights"):  # published weights: their statistics are the model's
            model.data_config = DataConfig((int(ckpt["in_chans"]), *map(int, ckpt["image_size"])),
                                           tuple(ckpt["mean"]), tuple(ckpt["std"]))
        source = str(ckpt.get("weights") or ckpt.get("source")) if isinstance(checkpoint, dict) else str(checkpoint)
        if data is None:
            config = checkpoint_inputs(config, ckpt)
            data = load_config_data(config)  # (its subsets too)
        check_inputs(ckpt, data, source)
        check_kept_heads(ckpt, data, source)
        options = dict(ckpt.get("model_options", {}))
        drop_heads_left_out(model, options, data, config, source)
        torch.manual_seed(config.seed)  # the new head's initial weights: the same for the same seed
        if until is not None:
            if options.get("until") is not None:
                raise ConfigError(f"{source} is already cut at {options['until']!r}; "
                                  "fine-tune it without `until`")
            model = truncate(model, until, num_classes=data.num_classes)
            options["until"] = until  # create_model(..., until=...) rebuilds this network from the new checkpoint
        else:
            model.reset_classifier(data.num_classes)
        model.train()
        config = dataclasses.replace(
            config, model=str(ckpt["model_name"]), model_options=options, init_from=source,
            image_size=config.image_size or int(ckpt["image_size"][0]))
        return config, data, model


def check_config(config: object, give: str = "TrainConfig(data=...) of the data to fine-tune on (the model is the "
                 "checkpoint's)") -> None:
    """One line where `config` is not a TrainConfig (a model's name, a checkpoint's path), saying to `give` one,
    before an AttributeError from inside."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"`config` must be a TrainConfig, got {type(config).__name__} {config!r:.60}; give {give}")


def checkpoint_inputs(config: TrainConfig, checkpoint: dict[str, Any]) -> TrainConfig:
    """`config` reading its labels CSV with the inputs the checkpoint's run read (its --inputs, e.g. image,image2),
    when none are given and the CSV has those columns, as `evaluate` reads one (its run's --inputs and --targets)."""
    table = checkpoint.get("table") or {}
    inputs = list(run_config(checkpoint).get("inputs") or table.get("inputs") or [])
    if config.inputs or not inputs or not str(config.data).lower().endswith(".csv"):
        return config
    try:
        header = _Table(Path(config.data).expanduser()).header
    except DataError:  # (said as such when the CSV is loaded)
        return config
    if not all(_split_spec(spec)[0] in header for spec in inputs):
        return config  # another CSV's columns: `check_inputs` compares the items it gives with the model's
    return dataclasses.replace(config, inputs=inputs)


def check_inputs(checkpoint: dict[str, Any], data: Any, source: str) -> None:
    """A labels CSV's run takes items of as many images (and numbers) as it was trained on: one line naming its
    --inputs, not a mismatch of channels later."""
    table = checkpoint.get("table") or {}
    if not table.get("inputs"):
        return
    inputs, numbers = list(table["inputs"]), len(table.get("vectors") or {})
    given = (len(getattr(data, "image_columns", ("image",))), len(getattr(data, "vector_columns", ())))
    if given == (len(inputs) - numbers, numbers):
        return
    specs = ",".join(run_config(checkpoint).get("inputs") or inputs)
    raise ConfigError(f"{source} was trained on items of {_item(len(inputs) - numbers, numbers)} (`inputs` "
                      f"{specs}), but `data` {data.name} gives items of {_item(*given)}: name the labels CSV's "
                      f"columns of them with `inputs` (as `inputs` {specs} named them)")


def _item(images: int, numbers: int) -> str:
    return f"{images} image{'s' if images > 1 else ''}" + (
        f" and {numbers} number{'s' if numbers > 1 else ''}" if numbers else "")


def drop_heads_left_out(model: nn.Module, options: dict[str, Any], data: Any, config: TrainConfig,
                        source: str) -> list[str]:
    """A labels CSV's run fine-tuned on some of its targets (--targets species,colour of species,colour,age): the
    heads of the others are dropped from the model and from its `options` (by `--targets species` alone, every
    task head), so that no head is trained or scored without its own target; said in a line. Returns their
    names; a --loss weight of one is refused. (A model whose name fixes its heads, lenet5_two_head's parity, keeps
    them: a head without its column is refused as the targets are read.)"""
    heads = dict(getattr(model, "task_classes", {}))
    if not isinstance(data, TabularImages) or "tasks" not in options:
        return []
    # (a head named as the new main column is dropped too: the main classifier learns that column)
    dropped = [name for name in heads if name not in data.train.targets]
    weighed = [name for name in dropped if name in config.loss_weights]
    if weighed:
        them = len(weighed) > 1
        raise ConfigError(f"`loss_weights` weighs {', '.join(weighed)}, but the labels CSV's targets here are "
                          f"{', '.join(data.columns)}: add {', '.join(weighed)} to `targets` to fine-tune "
                          f"{'those heads' if them else 'that head'} of {source}, or leave {'them' if them else 'it'} "
                          "out of `loss_weights`")
    if dropped:
        kept = {name: classes for name, classes in heads.items() if name not in dropped}
        for name in dropped:
            delattr(model, name)
        model.task_classes, model.aux_names = kept, tuple(kept)
        options["tasks"] = dict(kept)
        model.model_options = {**getattr(model, "model_options", options), "tasks": dict(kept)}
        log.info("%s's head%s %s %s dropped: not among the labels CSV's targets (%s)", source,
                 *(("s", ", ".join(dropped), "are") if len(dropped) > 1 else ("", dropped[0], "is")),
                 ", ".join(data.columns))
    return dropped


def check_kept_heads(checkpoint: dict[str, Any], data: Any, source: str) -> None:
    """The heads a fine-tuned model keeps (a labels CSV's columns besides its main one) predict the classes
    they learnt, in their order: a column of other class names would be read by index, as other classes."""
    learnt = (checkpoint.get("table") or {}).get("targets", {})
    for name, column in getattr(data, "columns", {}).items():
        kept = learnt.get(name)
        if name == data.main_column or kept is None or column.kind != "class" or kept.get("kind") != "class":
            continue
        # (a head of another size than its column is refused as such when the targets are read)
        # (compared in NFC: a checkpoint of an older version kept a `café` a Mac named in NFD)
        if len(column.classes) == len(kept["classes"]) and \
                [same_form(c) for c in column.classes] != [same_form(c) for c in kept["classes"]]:
            raise ConfigError(f"column {name!r} of {data.name} holds the classes {', '.join(column.classes)}, but "
                              f"{source}'s head {name!r} learnt {', '.join(kept['classes'])}, which it keeps: name "
                              f"them as it learnt them, or give `targets` {data.main_column} to fine-tune the main "
                              "target alone")


__all__ = ["PRETRAINED_DEFAULTS", "TRAIN_PRETRAINED_DEFAULTS", "check_inputs", "check_kept_heads",
           "checkpoint_inputs", "drop_heads_left_out", "finetune_parts", "finetune_trainer", "pretrained_defaults",
           "pretrained_trainer"]
