"""Transfer and several outputs: loading matching weights, freezing, fine-tuning, feature
extraction, and extra targets for models with several heads."""
from .features import extract_features, save_features
from .finetune import finetune_trainer
from .freeze import backbone_lr_groups, freeze_backbone, head_modules
from .loading import LoadReport, load_matching
from .targets import DERIVED_TARGETS, derive_target

__all__ = ["DERIVED_TARGETS", "LoadReport", "backbone_lr_groups", "derive_target", "extract_features",
           "finetune_trainer", "freeze_backbone", "head_modules", "load_matching", "save_features"]
