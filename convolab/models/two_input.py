"""Several inputs on any registered backbone: an item's images (stacked on the channels) through one
shared backbone, their pooled features side by side, and optionally a vector of numbers through a small
MLP, all concatenated before the heads (the main classifier and one head per extra target).

Built by `multitask(..., image_inputs=2)` or `multitask(..., vector_inputs=K)`; a labels CSV with
`--inputs image,image2` or `--inputs image,height,weight` trains it (convolab/data/labels_csv.py).
The input is a tensor N x (images x C) x H x W, or a pair (that tensor, N x K numbers). A plain tensor
given to a model with numeric inputs reads the vector as zeros (the training mean once standardized):
that is for shape probes (MAC counts, summaries, input-size checks), not for predictions.
"""
from __future__ import annotations

import torch
from torch import nn

from ._base import ConvNet, DataConfig, FeatureInfo, check_global_pool, check_num_classes, move_like

VECTOR_WIDTH = 32  # the numeric inputs' MLP: K -> 32 -> 32, ReLU


def task_head(features: int, classes: int) -> nn.Linear:
    """A head of `classes` logits, or (1) one number: a regression head."""
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"a task head needs an integer >= 1 outputs (1: a number), got {classes!r}")
    return nn.Linear(features, classes)


def add_task_heads(model: nn.Module, tasks: dict[str, int]) -> None:
    """One head per task on `model.num_features` features, an attribute named as the task (a name the model has
    already, or one that is not an identifier, is refused), and the model's record of them: `task_classes`, and
    `aux_names` for the engine."""
    for name, classes in tasks.items():
        if name in TAKEN_HEAD_NAMES or hasattr(model, name) or not name.isidentifier():
            raise ValueError(f"task head name {name!r} is taken or not an identifier")
        model.add_module(name, task_head(model.num_features, classes))
    model.task_classes = dict(tasks)
    model.aux_names = tuple(tasks)


class MultiInputNet(ConvNet):
    """A shared backbone on `image_inputs` images of an item, plus an MLP on `vector_inputs` numbers.

    It has no `head`: the main classifier is `fc` (`get_classifier()`), and each task head is an attribute
    named as its task. The backbone's parts are called through its `forward_features` and `forward_head`,
    never `model.backbone` itself, so a hook registered on `model.backbone` never fires: register it on one
    of its layers (`model.backbone.head`, a stage) instead."""

    def __init__(self, backbone: ConvNet, num_classes: int, tasks: dict[str, int], image_inputs: int = 2,
                 vector_inputs: int = 0):
        super().__init__()
        if image_inputs < 1 or vector_inputs < 0:
            raise ValueError(f"needs image_inputs >= 1 and vector_inputs >= 0, got {image_inputs}, {vector_inputs}")
        backbone.reset_classifier(0)  # its pooled features feed the heads below
        self.backbone = backbone
        self.image_inputs, self.vector_inputs = image_inputs, vector_inputs
        self.in_chans = backbone.in_chans * image_inputs
        self.num_classes = num_classes
        self.num_features = backbone.num_features * image_inputs + (VECTOR_WIDTH if vector_inputs else 0)
        size = backbone.data_config.input_size
        self.data_config = DataConfig((self.in_chans, size[1], size[2]),
                                      tuple(backbone.data_config.mean) * image_inputs,
                                      tuple(backbone.data_config.std) * image_inputs)
        self.feature_info = [FeatureInfo(f"backbone.{f.module}", f.num_chs, f.reduction)
                             for f in backbone.feature_info]
        self.vector = (nn.Sequential(nn.Linear(vector_inputs, VECTOR_WIDTH), nn.ReLU(),
                                     nn.Linear(VECTOR_WIDTH, VECTOR_WIDTH), nn.ReLU())
                       if vector_inputs else None)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        add_task_heads(self, tasks)

    def forward_features(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The fused features N x num_features: each image's pooled backbone features, then the MLP's."""
        images, vector = x if isinstance(x, (tuple, list)) else (x, None)
        n, k = images.shape[0], self.image_inputs
        # One pass through the backbone for all the images (shared weights, one batch-norm batch).
        stacked = torch.cat(images.chunk(k, dim=1), dim=0) if k > 1 else images
        pooled = self.backbone.forward_head(self.backbone.forward_features(stacked), pre_logits=True)
        parts = [pooled.reshape(k, n, -1).transpose(0, 1).reshape(n, -1)]
        if self.vector is not None:
            if vector is None:  # a shape probe: the standardized mean
                vector = images.new_zeros(n, self.vector_inputs)
            parts.append(self.vector(vector.to(pooled.dtype)))
        return torch.cat(parts, dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The fused N x num_features features -> N x num_classes main logits; `pre_logits`: the features as given."""
        return x if pre_logits else self.fc(x)

    def forward_outputs(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`{"main": logits, <task>: logits or numbers, ...}` from one pass through the backbone."""
        features = self.forward_features(x)
        return {"main": self.fc(features), **{name: getattr(self, name)(features) for name in self.aux_names}}

    def get_classifier(self) -> nn.Module:
        """The main classifier, `fc` (an nn.Identity when num_classes is 0); the task heads are not it."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh main classifier for `num_classes` (0: none) on the backbone's device and dtype; task heads kept."""
        num_classes = check_num_classes(num_classes)
        check_global_pool(global_pool)
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.fc = move_like(fc, next(self.backbone.parameters(), None))
        self.num_classes = num_classes


# A task head is an attribute of the model named as its target, so a name the model has already is refused (by both
# kinds, MultiTaskNet's attributes being a subset of these, and by the labels-CSV loader, which names the column):
# the class's attributes, nn.Module's and ConvNet's instance ones, those __init__ sets, and those set on the built
# model (multitask(), pretrained/).
TAKEN_HEAD_NAMES = frozenset({*dir(MultiInputNet), *vars(nn.Module()), *ConvNet.__annotations__, "main", "backbone",
                              "fc", "vector", "image_inputs", "vector_inputs", "task_classes", "main_name",
                              "model_options", "pretrained_cfg"})

__all__ = ["MultiInputNet", "TAKEN_HEAD_NAMES", "VECTOR_WIDTH", "add_task_heads", "task_head"]
