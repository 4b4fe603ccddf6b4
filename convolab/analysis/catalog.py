"""The model catalogue: every registered model with its parameter and MAC counts at its input size.

Counting builds each model on the meta device and runs it once at its input size: about 10 s for the 53 built-in
models on a laptop core. The rows of convolab's own models are kept in a file of the user's cache folder, named
by a digest of convolab's source and torch's version, so a listing after the first takes the time of the imports;
a model registered by anyone else is counted at each call (its code is not in the digest)."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .._atomic import atomic_write, json_text, write_utf8
from .._paths import user_cache
from .._registry import natural_key
from ..errors import ConvolabError
from ..models import create_model, get_entry, list_models
from .counting import count_macs, count_params

CATALOG_VERSION = 1  # a new version never reads an older file
FIGURES = ("params", "macs", "input_size", "note")  # what a row keeps from the cache; the rest is the registry's


def model_catalog(pattern: str = "*", cache: bool = True) -> list[dict]:
    """One row per model whose name or alias matches `pattern` (any case); models are built on the meta
    device (no memory, fast). A figure that cannot be computed is None, and `note` says why: a model that
    cannot be built with its default options, one without a `data_config` (no input size, so no MACs), one
    that does not run at its input size (no MACs). A registered model is anyone's code: one that fails
    costs its own row's figures, not the listing. `cache`: read and write the figures of convolab's own models
    in the cache file (`catalog_file`); an unreadable or unwritable cache only costs the time."""
    names = sorted({get_entry(n).name for n in list_models(pattern, include_aliases=True)}, key=natural_key)
    kept = _read_cache() if cache else {}
    rows, fresh = [], {}
    for name in names:
        figures = kept.get(name) if _ours(name) else None
        if isinstance(figures, dict) and set(figures) == set(FIGURES):
            rows.append({**catalog_row(name, count=False), **figures})
            continue
        rows.append(catalog_row(name))
        if _ours(name):
            fresh[name] = {key: rows[-1][key] for key in FIGURES}
    if cache and fresh:
        _write_cache({**kept, **fresh})
    return rows


def catalog_row(name: str, count: bool = True) -> dict:
    """The catalogue's row of one registered model (`count=False`: the registry's part only, figures None)."""
    entry = get_entry(name)
    row = {"name": name, "family": entry.family, "params": None, "macs": None, "input_size": None,
           "pretrained": list(entry.pretrained_sources), "aliases": list(entry.aliases), "note": None}
    if not count:
        return row
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


def _ours(name: str) -> bool:
    """Whether `name` is one of convolab's own models (its code in the digest), not one registered elsewhere."""
    return getattr(get_entry(name).fn, "__module__", "").startswith("convolab.")


@functools.cache
def source_digest() -> str:
    """SHA-256 of convolab's source files (their paths and bytes), torch's version and the catalogue's version."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"convolab-catalog-{CATALOG_VERSION}|torch {torch.__version__}".encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def catalog_file() -> Path:
    """Where the figures of convolab's own models are kept: catalog-DIGEST.json in convolab/catalog of the user's
    cache folder ($CONVOLAB_CATALOG_CACHE where set)."""
    folder = Path(user_cache("CONVOLAB_CATALOG_CACHE", "catalog")).expanduser()
    return folder / f"catalog-{source_digest()}.json"


def _read_cache() -> dict:
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        kept = json.loads(catalog_file().read_text(encoding="utf-8"))
        if isinstance(kept, dict):
            return kept
    return {}


STALE_SECONDS = 30 * 86400  # another digest's file unread this long is an older convolab's or torch's


def _write_cache(rows: dict) -> None:
    """The figures into the cache file (written whole, then renamed). Another digest's file is removed once a month
    has passed since it was written: two installs sharing the cache folder (two venvs, two torch versions) keep
    each its own (removed at once, each would remove the other's and count again at every switch)."""
    with contextlib.suppress(OSError, ConvolabError):
        path = catalog_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: write_utf8(tmp, json_text(rows)))
        for old in path.parent.glob("catalog-*.json"):
            with contextlib.suppress(OSError):
                if old != path and time.time() - old.stat().st_mtime > STALE_SECONDS:
                    os.remove(old)
