"""The model catalogue: every registered model with its parameter and MAC counts at its input size."""
from __future__ import annotations

import torch

from ..errors import ConvolabError
from ..models import create_model, get_entry, list_models
from .counting import count_macs, count_params


def model_catalog(pattern: str = "*") -> list[dict]:
    """One row per model whose name or alias matches `pattern` (any case); models are built on the meta
    device (no memory, fast). A figure that cannot be computed is None, and `note` says why: a model that
    cannot be built with its default options, one without a `data_config` (no input size, so no MACs), one
    that does not run at its input size (no MACs). A registered model is anyone's code: one that fails
    costs its own row's figures, not the listing."""
    names = sorted({get_entry(n).name for n in list_models(pattern, include_aliases=True)})
    return [catalog_row(name) for name in names]


def catalog_row(name: str) -> dict:
    """The catalogue's row of one registered model."""
    entry = get_entry(name)
    row = {"name": name, "family": entry.family, "params": None, "macs": None, "input_size": None,
           "pretrained": list(entry.pretrained_sources), "aliases": list(entry.aliases), "note": None}
    try:
        with torch.device("meta"):
            model = create_model(name)
    except Exception as err:  # anyone's constructor: its failure is this row's note
        row["note"] = f"cannot be built with its default options ({one_line(err)})"
        return row
    row["params"] = count_params(model)
    data_config = getattr(model, "data_config", None)
    if data_config is None:
        row["note"] = (f"has no data_config (a {type(model).__name__}, not a convolab ConvNet), so no input size "
                       f"or MACs; `convolab summary {name} --input-size C,H,W` counts them at a size you give")
        return row
    row["input_size"] = list(data_config.input_size)
    try:
        row["macs"] = count_macs(model, tuple(data_config.input_size))
    except Exception as err:  # anyone's forward, likewise
        row["note"] = f"does not run at its input size {'x'.join(map(str, row['input_size']))} ({one_line(err)})"
    return row


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    if isinstance(err, ConvolabError) and text:  # already a sentence for the user
        return text[0]
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__

