"""Several task heads on one backbone: the main classifier plus named heads on the same
penultimate features (e.g. the digit and its parity), each an output of `forward_outputs`.

The engine trains every output with its own loss and weight (`--loss main=1,parity=0.5`); an
output's target is the extra target of the same name (`--extra-target parity`, see
convolab/data/targets.py), or a labels CSV's column of that name (convolab/data/labels_csv.py: a
head of one output learns a numeric column by regression), and metrics.csv gets a `test_acc_<name>`
(or `test_mae_<name>`) column per output.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._registry import register_model
from ..errors import ConfigError
from ._base import ConvNet, FeatureInfo, check_num_classes
from ._factory import create_model
from .two_input import MultiInputNet, add_task_heads


class MultiTaskNet(ConvNet):
    """A backbone ConvNet whose pre-logits features also feed one linear head per extra task.

    It has no `head`: the main classifier is `get_classifier()`, the backbone's, and each task head is an
    attribute named as its task. The backbone's parts are called through its `forward_features` and
    `forward_head`, never `model.backbone` itself, so a hook registered on `model.backbone` never fires:
    register it on one of its layers (`model.backbone.head`, a stage) instead."""

    def __init__(self, backbone: ConvNet, tasks: dict[str, int]):
        super().__init__()
        self.backbone = backbone
        self.num_classes, self.in_chans = backbone.num_classes, backbone.in_chans
        self.num_features = backbone.num_features
        self.data_config = backbone.data_config
        self.feature_info = [FeatureInfo(f"backbone.{f.module}", f.num_chs, f.reduction)
                             for f in backbone.feature_info]
        add_task_heads(self, tasks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"main": logits, <task>: logits, ...}`; the heads share one pass through the backbone."""
        feature_map = self.forward_features(x)
        features = self.forward_head(feature_map, pre_logits=True)
        classifier = self.get_classifier()
        if isinstance(classifier, (nn.Linear, nn.Identity)):  # one dropout draw for every head
            outputs = {"main": classifier(features)}
        else:  # NiN's classifier: class-map convolutions on the unpooled map
            outputs = {"main": self.forward_head(feature_map)}
        for name in self.aux_names:
            outputs[name] = getattr(self, name)(features)
        return outputs

    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new main classifier; the task heads keep their own classes."""
        num_classes = check_num_classes(num_classes)
        self.backbone.reset_classifier(num_classes, global_pool)
        self.num_classes = num_classes


@register_model(layout_from="backbone")  # (the heads add nothing a layout change touched)
def multitask(num_classes: int = 10, in_chans: int = 1, backbone: str = "lenet5_modern",
              tasks: dict[str, int] | None = None, image_inputs: int = 1, vector_inputs: int = 0,
              main_name: str = "main", **backbone_options: Any) -> MultiTaskNet | MultiInputNet:
    """Any registered backbone with extra task heads, e.g. tasks={"vehicle": 2} (default {"parity": 2};
    1 output: a number, learnt by regression). `image_inputs` images of an item (stacked on the `in_chans`
    channels) through the shared backbone and `vector_inputs` numbers through an MLP give a MultiInputNet
    (convolab/models/two_input.py); `main_name` names the main output's target (a labels CSV's column)."""
    tasks = dict(tasks) if tasks is not None else {"parity": 2}
    for key, value, least in (("image_inputs", image_inputs, 1), ("vector_inputs", vector_inputs, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"multitask's {key} must be a whole number >= {least}, got {value!r}")
    if in_chans % image_inputs:
        raise ValueError(f"in_chans {in_chans} is not {image_inputs} images' channels")
    net = create_model(backbone, num_classes=num_classes, in_chans=in_chans // image_inputs, **backbone_options)
    model = (MultiInputNet(net, num_classes, tasks, image_inputs, vector_inputs)
             if image_inputs > 1 or vector_inputs else MultiTaskNet(net, tasks))
    model.main_name = main_name
    # What rebuilds it (a checkpoint records these: config.json's options are the backbone's).
    model.model_options = {"backbone": backbone, "tasks": tasks, "image_inputs": image_inputs,
                           "vector_inputs": vector_inputs, "main_name": main_name, **backbone_options}
    return model


@register_model
def lenet5_two_head(num_classes: int = 10, in_chans: int = 1, img_size: int = 28) -> MultiTaskNet:
    """LeNet-5 (ReLU, max pool) predicting the digit (`main`) and its parity (`parity`: even/odd)."""
    return MultiTaskNet(create_model("lenet5_modern", num_classes=num_classes, in_chans=in_chans,
                                     img_size=img_size), {"parity": 2})
