"""The model catalogue: every registered model with its parameter and MAC counts at its input size."""
from __future__ import annotations

import torch

from ..models import create_model, get_entry, list_models
from .counting import count_macs, count_params


def model_catalog(pattern: str = "*") -> list[dict]:
    """One row per model whose name or alias matches `pattern` (any case); models are built on the meta
    device (no memory, fast)."""
    rows = []
    for name in sorted({get_entry(n).name for n in list_models(pattern, include_aliases=True)}):
        entry = get_entry(name)
        with torch.device("meta"):
            model = create_model(name)
        input_size = tuple(model.data_config.input_size)
        rows.append({"name": name, "family": entry.family, "params": count_params(model),
                     "macs": count_macs(model, input_size), "input_size": list(input_size),
                     "pretrained": list(entry.pretrained_sources), "aliases": list(entry.aliases)})
    return rows
