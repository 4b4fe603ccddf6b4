"""Published weights (torchvision's and timm's, fetched by their own download code and converted by
`convolab.interop`) and weights in safetensors files: `create_model(name, pretrained=...)`, and the
checkpoint records every verb takes in place of a checkpoint.

The table of which model has which weights is `sources.py`; fetching and converting, with the one-line
errors of a missing or damaged download, is `load.py`; `models.py` builds the model.
"""
from ..training.safetensors_io import load_safetensors, save_safetensors
from .load import fetch_pretrained, hf_cache_dir, offline, pretrained_checkpoint, torch_cache_dir
from .models import create_model, is_weights_path, model_from_record, weights_record
from .sources import (
    SOURCES,
    Weights,
    WeightsError,
    choose_weights,
    models_with_weights,
    published_weights,
    weights_table,
)

__all__ = ["SOURCES", "Weights", "WeightsError", "choose_weights", "create_model", "fetch_pretrained", "hf_cache_dir",
           "is_weights_path", "load_safetensors", "model_from_record", "models_with_weights", "offline",
           "pretrained_checkpoint", "published_weights", "save_safetensors", "torch_cache_dir",
           "weights_record", "weights_table"]
