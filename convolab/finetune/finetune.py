"""Fine-tuning: a trained checkpoint's model with a new head (or only its layers up to a named
stage, under a fresh head), trained on new data by the ordinary engine."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..data import ImageData, load_data
from ..errors import ConfigError
from ..models._features import truncate
from ..training import TrainConfig, Trainer
from ..training.inference import load_trained_model


def finetune_trainer(checkpoint: str | Path, config: TrainConfig, until: str | None = None,
                     data: ImageData | None = None) -> Trainer:
    """A Trainer for `checkpoint`'s model, weights loaded, head replaced for `config.data`'s classes.

    `until` keeps only the layers up to that stage (e.g. GoogLeNet's `inception4e`) under global
    pooling and a fresh linear head. Freezing and the backbone's learning-rate scale come from
    `config` (`freeze_backbone`, `backbone_lr_scale`); images are resized to the checkpoint's
    training size and converted to its channels unless `config.image_size` says otherwise.
    """
    if config.model_options:
        raise ConfigError("fine-tuning rebuilds the checkpoint's own model; --model-option is not taken")
    loaded = load_trained_model(checkpoint)
    ckpt, model = loaded.checkpoint, loaded.model
    if data is None:
        data = load_data(config.data, config.data_dir, config.download, config.skip_bad_images,
                         config.val_fraction, config.image_size, config.loader, config.workers)
    options = dict(ckpt.get("model_options", {}))
    torch.manual_seed(config.seed)  # the new head's initial weights: the same for the same seed
    if until is not None:
        if options.get("until") is not None:
            raise ConfigError(f"{checkpoint} is already cut at {options['until']!r}; "
                              "fine-tune it without --until")
        model = truncate(model, until, num_classes=data.num_classes)
        options["until"] = until  # create_model(..., until=...) rebuilds this network from the new checkpoint
    else:
        model.reset_classifier(data.num_classes)
    model.train()
    config = dataclasses.replace(
        config, model=str(ckpt["model_name"]), model_options=options, init_from=str(checkpoint),
        image_size=config.image_size or int(ckpt["image_size"][0]))
    return Trainer(config, data=data, model=model)


__all__ = ["finetune_trainer"]
