"""Model families, one file each; every public entry point is registered with `@register_model`.

Importing this package imports every family (so each registers its models), as timm's `models`
package does. A new family is one file here plus one line below.
"""
from .._registry import get_entry, list_models, register_model
from . import (  # noqa: F401  (imported to register their models)
    bn_inception,
    densenet,
    googlenet,
    inception_resnet,
    inception_v3,
    inception_v4,
    lecture,
    lenet,
    lenet_bn,
    multitask,
    nin,
    resnet,
)
from ._base import ConvNet, DataConfig, FeatureInfo
from ._factory import create_model, option_names

__all__ = ["ConvNet", "DataConfig", "FeatureInfo", "create_model", "get_entry", "list_models", "option_names",
           "register_model"]
