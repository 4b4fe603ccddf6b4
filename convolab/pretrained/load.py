"""Published weights as a convolab checkpoint record: fetched by torchvision's weights API or timm's hub
(their own download and cache code), converted by `convolab.interop`, with the weights' metadata kept.

Where the weights are neither cached nor downloadable, or a cached file is damaged, the WeightsError's
one line names the file, the cache folder and what to do. `CONVOLAB_OFFLINE=1` (or Hugging Face's
`HF_HUB_OFFLINE=1`) reads the caches only, never the network.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..interop import from_timm, from_torchvision
from ..models import get_entry
from ..training.checkpoint import FORMAT, layout_fields
from .sources import TIMM_MISSING, Weights, WeightsError, choose_weights

WEIGHTS_IN_CHANS = 3  # every published set of weights (torchvision's, timm's) takes RGB input
HF_FILE = "model.safetensors"
HF_FALLBACK = "pytorch_model.bin"  # what older hub repositories (and caches filled by older timm) hold instead


def offline() -> bool:
    """Whether the user asked for the caches only (no download attempted)."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("CONVOLAB_OFFLINE", "HF_HUB_OFFLINE"))


def unreachable(url: str) -> str | None:
    """Why `url`'s host cannot be reached (its name does not resolve: no network), or None. Asked before a
    download so that an offline machine gets one line at once, not the libraries' retries and notices."""
    host = urlparse(url).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError as err:
        return f"no network: {host} does not resolve ({err.strerror or err})"
    return None


@contextlib.contextmanager
def quiet_timm() -> Iterator[None]:
    """timm logs where it loads weights from at INFO, which the CLI shows: keep its notices out of the output."""
    logger = logging.getLogger("timm")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def torch_cache_dir() -> Path:
    """Where torch.hub keeps downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache timm downloads into, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def _missing(weights: Weights, file: str, where: Path, how: str, reason: str) -> WeightsError:
    return WeightsError(f"the {weights.label} weights are neither cached nor downloadable ({reason}): "
                        f"{file} is not in the cache folder {where}; {how}")


def _damaged(weights: Weights, file: Path, err: BaseException) -> WeightsError:
    return WeightsError(f"{file} in the weights cache is not a complete {weights.label} weights file "
                        f"({_first_line(err)}): a download that stopped part way or another file; delete it "
                        "and run again to download it, or place the whole file there by hand")


def _torchvision_peer(weights: Weights) -> nn.Module:
    import torchvision

    url = weights.handle.url
    file = torch_cache_dir() / os.path.basename(urlparse(url).path)
    how = (f"download {url} on a machine with internet and copy it there under that name "
           "(the folder is $TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints by default)")
    if not file.is_file():
        reason = "offline: CONVOLAB_OFFLINE or HF_HUB_OFFLINE is set" if offline() else unreachable(url)
        if reason:
            raise _missing(weights, file.name, file.parent, how, reason)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # torch.hub downloads to a temporary file and renames it: a partial download never has this name
            peer = torchvision.models.get_model(weights.source.peer, weights=weights.handle)
    except Exception as err:  # noqa: BLE001  a failed download (no network) or a damaged cached file
        if not file.is_file():
            raise _missing(weights, file.name, file.parent, how, _first_line(err)) from None
        raise _damaged(weights, file, err) from None
    return from_torchvision(peer.eval())


def _timm_peer(weights: Weights) -> nn.Module:
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        raise WeightsError(TIMM_MISSING) from None
    cfg = timm.models.get_pretrained_cfg(weights.handle)
    repo, cache = cfg.hf_hub_id, hf_cache_dir()
    folder = cache / f"models--{repo.replace('/', '--')}"
    how = (f"download https://huggingface.co/{repo}/resolve/main/{HF_FILE} on a machine with internet and put it "
           f"at {folder}/snapshots/REVISION/{HF_FILE} with REVISION written in {folder}/refs/main (the Hugging Face "
           "hub cache is $HF_HOME/hub, ~/.cache/huggingface/hub by default; or copy the whole models--... "
           "folder from a machine that has it)")
    cached = try_to_load_from_cache(repo, HF_FILE, cache_dir=str(cache))
    if not isinstance(cached, str):
        cached = try_to_load_from_cache(repo, HF_FALLBACK, cache_dir=str(cache))
    url = f"https://huggingface.co/{repo}/resolve/main/{HF_FILE}"
    reason = None if isinstance(cached, str) else (
        "offline: CONVOLAB_OFFLINE or HF_HUB_OFFLINE is set" if offline() else unreachable(url))
    with warnings.catch_warnings(), quiet_timm():
        warnings.simplefilter("ignore")
        if isinstance(cached, str):
            try:
                peer = timm.create_model(weights.handle, pretrained=True, pretrained_cfg_overlay={"file": cached})
            except Exception as err:  # noqa: BLE001  safetensors' own error for a truncated file
                raise _damaged(weights, Path(cached), err) from None
        elif reason:
            raise _missing(weights, HF_FILE, folder, how, reason)
        else:
            try:
                peer = timm.create_model(weights.handle, pretrained=True, cache_dir=str(cache))
            except Exception as err:  # noqa: BLE001  huggingface_hub's connection and not-found errors
                raise _missing(weights, HF_FILE, folder, how, _first_line(err)) from None
    return from_timm(peer.eval())


def class_names(weights: Weights, num_classes: int) -> list[str]:
    """The weights' class names: torchvision's `meta["categories"]`, timm's ImageNet-1k descriptions."""
    if weights.source.library == "torchvision":
        names = list(weights.handle.meta.get("categories") or [])
    else:
        from timm.data import ImageNetInfo

        names = [d.split(",")[0] for d in ImageNetInfo().label_descriptions()]
    return names if len(names) == num_classes else [f"class_{i}" for i in range(num_classes)]


def fetch_pretrained(name: str, pretrained: bool | str = True) -> tuple[dict[str, Any], nn.Module]:
    """The checkpoint record (as `load_checkpoint` returns) of registered model `name` with published weights,
    and our model holding them (eval mode): `pretrained` is True (the first source's default), "torchvision" /
    "timm" (that source's default), or a weights name ("IMAGENET1K_V2", "a1_in1k", "timm:resnet50.a1_in1k")."""
    name = get_entry(name).name
    weights = choose_weights(name, pretrained)
    model = _torchvision_peer(weights) if weights.source.library == "torchvision" else _timm_peer(weights)
    num_classes = int(model.num_classes)
    record = {
        "format": FORMAT, "model_name": name, "model_options": dict(weights.source.options),
        "num_classes": num_classes, "in_chans": WEIGHTS_IN_CHANS, "classes": class_names(weights, num_classes),
        "image_size": [weights.crop_size, weights.crop_size], "mean": list(weights.mean), "std": list(weights.std),
        # evaluation as the weights specify: resize to crop_size / crop_pct, centre crop at crop_size
        "preprocess": "center-crop", "crop_pct": weights.crop_pct, "interpolation": weights.interpolation,
        "data": "imagenet", "weights": weights.label,
        **layout_fields(name, dict(weights.source.options)),  # (today's converters: the model's current layout)
        "model": model.state_dict(), "source": weights.label,
    }
    return record, model


def pretrained_checkpoint(name: str, pretrained: bool | str = True) -> dict[str, Any]:
    """The checkpoint record of `name` with published weights (see `fetch_pretrained`), for the verbs."""
    return fetch_pretrained(name, pretrained)[0]


__all__ = ["fetch_pretrained", "hf_cache_dir", "offline", "pretrained_checkpoint", "torch_cache_dir"]
