"""Model families, one file each; every public entry point is registered with `@register_model`."""
from ._base import ConvNet, DataConfig, FeatureInfo

__all__ = ["ConvNet", "DataConfig", "FeatureInfo"]
