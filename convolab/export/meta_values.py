"""The checks of an export's metadata as read back from its file (ONNX metadata_props, TorchScript's convolab.json):
strings, each JSON-encoded but the names, which an edited or damaged file may garble or set out of range."""
from __future__ import annotations

import json
import math
from typing import Any

from ..data.decode import CROP_PCT
from ..training.safetensors_io import record_problem

NUMBERS = ("classes", "in_chans", "image_size", "mean", "std", "crop_pct")  # JSON-encoded
NAMES: dict[str, tuple[str, ...] | None] = {  # the plain strings, their allowed values (None: any) and default first
    "model_name": None,
    "preprocess": ("resize", "squash", "center-crop"),
    "interpolation": ("bilinear", "bicubic"),
    "crop_mode": ("", "L", "RGB"),  # ("": by in_chans)
    "tta": ("none", "flip"),  # (a file written before it was recorded: none, as it was then scored)
}
DEFAULTS = {"crop_pct": CROP_PCT, "model_name": ""}  # (a file written before they were recorded: what a checkpoint
# without them means)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def meta_values(values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The metadata's values decoded, and what is wrong with them (None: nothing), as the words after `FILE: `;
    a key missing that has no default is left out, for the caller to name."""
    out: dict[str, Any] = {}
    for key in NUMBERS:
        if key not in values:
            if key in DEFAULTS:
                out[key] = DEFAULTS[key]
            continue
        text = values[key]
        if not isinstance(text, str):
            return out, f"its metadata {key!r} is {_shown(text)}, not a JSON string as an export writes it"
        try:
            out[key] = json.loads(text)
        except ValueError:
            return out, f"its metadata {key!r} is {_shown(text)}, not JSON"
    for key, allowed in NAMES.items():
        value = values.get(key, DEFAULTS.get(key, allowed[0] if allowed else ""))
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            wanted = f"one of {', '.join(map(repr, allowed))}" if allowed else "a string"
            return out, f"its metadata {key!r} is {_shown(value)}, not {wanted}"
        out[key] = value
    if any(key not in out for key in NUMBERS):
        return out, None
    classes, crop = out["classes"], out["crop_pct"]
    if not (isinstance(classes, list) and classes):
        return out, f"its metadata 'classes' is {_shown(classes)}, not a non-empty list of class names"
    problem = record_problem({k: out[k] for k in ("classes", "in_chans", "image_size", "mean", "std")})
    if problem is not None:
        return out, problem.replace("its ", "its metadata ", 1)
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not (math.isfinite(crop) and 0 < crop <= 1):
        return out, f"its metadata 'crop_pct' is {_shown(crop)}, not a fraction in (0, 1] (of the resized image kept)"
    return out, None
