"""What `Trainer.resume` checks before it continues a run: which of the options given are changes, that last.pt
and config.json describe one run, that the data still hold the run's classes, and that a model given in place of the
recorded one is that model."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from .._paths import same_path
from .._registry import registered_name
from ..data.names import same_form
from ..data.torchvision_sets import plain_class_name
from ..errors import CheckpointError, ConfigError, DataError
from ..models import create_model as build_model
from .checkpoint import check_layout, weights_mismatch
from .config import TrainConfig
from .rundir import resolved_options
from .state import images_then_and_now, same_classes_of_images

log = logging.getLogger("convolab")


def resume_changes(run_dir: str | Path, config: TrainConfig, given: dict[str, Any]) -> dict[str, Any]:
    """Of the options `given` to continue the run in `run_dir` (recorded as `config`), those that change it. What
    names the run's own value is no change: the run folder itself as output (wherever it was made or copied), the
    same data path written another way, an option repeated as it was given or as the run resolved it (lr=0.01 for
    lenet5's default lr). The CLI's --resume and `Trainer.resume` alike."""
    used = resolved_options(run_dir)
    return {name: value for name, value in given.items()
            if not (name == "output" and same_path(value, run_dir)
                    or name in ("data", "data_dir", "init_from") and same_path(value, getattr(config, name))
                    or value == getattr(config, name)
                    or name in used and value == used[name])}


def given_model(model: torch.nn.Module, state: dict[str, Any], run_dir: Path) -> torch.nn.Module:
    """`Trainer.resume(run_dir, model=...)`'s model, when it is the one last.pt records (a registered one: by name
    and options, as weights of the same shapes may compute something else) and last.pt's weights fit it: one line
    when not."""
    name = str(getattr(model, "model_name", "") or "")
    if name and "model_name" in state:  # (one of no registered name is known by its weights alone)
        recorded, options = str(state.get("model_name", "")), _plain(getattr(model, "model_options", None))
        saved = _plain(state.get("model_options"))
        same_name = (registered_name(name) or name) == (registered_name(recorded) or recorded)
        if not same_name or (options != saved and not builds_alike(name, options, saved, model)):
            given, held = f"{name} {options}" if options else name, f"{recorded} {saved}" if saved else recorded
            built = "".join(f", {key}={value!r}" for key, value in saved.items())
            build = f"create_model({recorded!r}, num_classes=..., in_chans=...{built}), or leave model= out"
            if not recorded:
                held, build = "a model of no registered name", "a model built as the run's"
            raise CheckpointError(f"the model given to Trainer.resume is not the one {run_dir} trained (given: "
                                  f"{given}; its last.pt records {held}): give {build}")
    check_layout(state, run_dir / "last.pt")  # (its weights, of an older layout, would compute something else)
    problem = weights_mismatch(model, state["model"])
    if problem is not None:
        raise CheckpointError(f"the model given to Trainer.resume is not the one {run_dir} trained ({problem}); "
                              "give a model built as the run's")
    return model


def builds_alike(name: str, given: dict[str, Any], saved: dict[str, Any], model: torch.nn.Module) -> bool:
    """Whether model `name` built with the `given` options and with the `saved` ones has the same modules, each with
    the same settings: options at their defaults where the builder takes **kwargs and names none (resnet20's
    drop_rate=0.0, shortcut="A")."""
    size = {"num_classes": getattr(model, "num_classes", None), "in_chans": getattr(model, "in_chans", None)}
    try:
        built = [build_model(name, **size, **options) for options in (given, saved)]
    except Exception:  # noqa: BLE001  (options one of the two cannot take: not alike)
        return False
    return _settings(built[0]) == _settings(built[1])


def _settings(model: torch.nn.Module) -> list[tuple[str, str, dict[str, Any]]]:
    """Each module's kind and plain settings (a convolution's stride, a dropout's p, a model's transform_input)."""
    plain = (bool, int, float, str, tuple, type(None))
    return [(name, type(m).__name__, {k: v for k, v in vars(m).items()
                                      if not k.startswith("_") and isinstance(v, plain)})
            for name, m in model.named_modules()]


def _plain(options: Any) -> dict[str, Any]:
    """Model options as a checkpoint's JSON-like record compares them (tuples as lists)."""
    return json.loads(json.dumps(dict(options or {}), default=str))


def check_same_run(config: TrainConfig, state: dict[str, Any], run_dir: Path) -> None:
    """One line when config.json and last.pt describe different runs (either edited by hand, or a last.pt
    copied from another run's folder): the options that shaped the weights must agree."""
    if "config" not in state:  # (a checkpoint older than its record of the options)
        return
    try:
        recorded = json.loads(state["config"])
    except (TypeError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise CheckpointError(f"{run_dir / 'last.pt'} holds no readable record of its run's options (its 'config'); "
                              "it was altered or not written by convolab train: restore it from a copy")
    differences = config.differences_from(recorded)
    if differences:
        raise CheckpointError(f"{run_dir / 'config.json'} and {run_dir / 'last.pt'} describe different runs "
                              f"({'; '.join(differences[:3])}): one was edited or copied from another run; "
                              "restore it, or start a new run")


def check_same_images(state: dict[str, Any], data: Any, run_dir: Path, source: str) -> str | None:
    """One line where last.pt was trained with validation images held out of its data's training split and this
    resume would hold none out, or the reverse (a run given data in Python, split or not, resumed without them): the
    images it trains and is scored on would change under it. Where the data hold other images than the run had
    (changed since: other numbers, or in other classes), what changed, said by the caller: its validation images,
    drawn again, may then be images it trained on. (A run on a folder's train/, val/ and test/ from before test/ was
    kept unseen trained and was scored as it is now.)"""
    counts, validation = images_then_and_now(state, data), state.get("validation_images") or 0
    if counts is None or counts[0] == counts[1] and same_classes_of_images(state, data):
        return None
    then, now = counts
    # (validation images held out then and none now, or none held out then and some now; a folder's val/ beside a
    # test/ kept unseen, by a run from before it was kept, scored val/ then as now: a change of its images is said)
    if validation and data.unseen_test is None or not validation and data.unseen_test is not None and data.held_out:
        held = f"with {validation} validation images held out of its training split, which this resume would train " \
            "on" if validation else f"on its data's whole training split, of which this resume would hold " \
            f"{len(data.test)} validation images out"
        raise ConfigError(f"{run_dir / 'last.pt'} was trained {held}; resume it with the data it was given "
                          f"(Trainer.resume({str(run_dir)!r}, data=...) in Python)")
    scored = "validation" if validation else "test"
    what = f"{then[0]} training and {then[1]} {scored} images then, {now[0]} and {now[1]} now" if then != now else \
        f"as many images, {now[0]} training and {now[1]} {scored}, in other classes"
    return f"`data` {source} has changed since {run_dir} was trained on it ({what})" + (
        ": its validation images are drawn again, and may be images the model trained on" if validation else "")


def check_same_classes(state: dict[str, Any], classes: list[str], run_dir: Path, data: str) -> None:
    """One line when the data's classes are no longer those the run was trained on (a class folder renamed,
    added or removed): its outputs would be read as other classes, or a new label would have no output. Names
    compare in NFC: a run of an older version kept a `café` a Mac named in NFD, which is read in NFC now."""
    saved = [same_form(plain_class_name(str(c))) for c in state.get("classes", [])]
    now = [same_form(str(c)) for c in classes]
    if not saved or saved == now:
        return
    gone, new = [c for c in saved if c not in now], [c for c in now if c not in saved]
    what = "; ".join(part for part in (f"gone: {', '.join(gone)}" if gone else "",
                                       f"new: {', '.join(new)}" if new else "") if part) or "another order"
    raise DataError(f"`data` {data} no longer holds the classes {run_dir} was trained on ({what}): restore the "
                    f"data as it was, or start a new run from its weights with `init_from` {run_dir / 'last.pt'}")


__all__ = ["builds_alike", "check_same_classes", "check_same_run", "given_model", "resume_changes"]
