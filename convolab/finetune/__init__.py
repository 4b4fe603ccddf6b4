"""Transfer and several outputs: loading matching weights, freezing, fine-tuning, feature
extraction, and extra targets for models with several heads.

Loading and freezing live in `convolab.training.transfer`, derived targets in `convolab.data.targets`
(the training engine uses them for --init-from, --freeze-backbone and --extra-target); they are
re-exported here, as before.
"""
from ..data.targets import DERIVED_TARGETS, derive_target
from ..training.transfer import LoadReport, backbone_lr_groups, freeze_backbone, head_modules, load_matching
from .features import extract_features, save_features
from .finetune import (
    PRETRAINED_DEFAULTS,
    TRAIN_PRETRAINED_DEFAULTS,
    finetune_parts,
    finetune_trainer,
    pretrained_defaults,
    pretrained_trainer,
)

__all__ = ["DERIVED_TARGETS", "PRETRAINED_DEFAULTS", "TRAIN_PRETRAINED_DEFAULTS", "LoadReport", "backbone_lr_groups",
           "derive_target", "extract_features", "finetune_parts", "finetune_trainer", "freeze_backbone",
           "head_modules", "load_matching", "pretrained_defaults", "pretrained_trainer", "save_features"]
