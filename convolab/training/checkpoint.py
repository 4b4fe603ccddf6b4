"""Checkpoints: one dict of tensors, numbers and strings, written atomically, read with weights_only."""
from __future__ import annotations

import json
import logging
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write
from .._paths import user_path
from .._registry import current_layout, is_builtin, registered_name
from .._version import __version__
from ..errors import CheckpointError, ConfigError, UnknownModelError
from ..models import create_model
from .safetensors_io import GIVE as GIVE_SAFETENSORS
from .safetensors_io import check_record, is_safetensors, load_safetensors, record_problem

FORMAT = "convolab-checkpoint-1"
GIVE = "give a best.pt or last.pt (or the run folder) written by `convolab train`"
# (an export is read by the commands that score with it, and in Python by its classifier)
EXPORT_READERS = ("give the .pt checkpoint or run folder written by `convolab train` (the exported files are read by "
                  "`convolab predict` and `convolab evaluate`, and in Python by OnnxClassifier, TorchScriptClassifier "
                  "and ProgramClassifier)")
log = logging.getLogger("convolab")
RECORD = ("model_name", "num_classes", "in_chans", "classes", "image_size", "mean", "std")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write `state` with torch.save, marked with FORMAT, atomically: `path` is the old file or the whole new one."""
    atomic_write(user_path(path), lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def _zip_names(path: Path) -> list[str] | None:
    """The members of a zip archive (what torch.save writes), or None for any other file."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _failed_checksum(path: Path) -> str | None:
    """The first member of a zip archive whose bytes fail its CRC-32 (a bit flipped: a tensor's values changed, which
    torch.load reads without a word), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def _pickled_objects(text: str) -> str | None:
    """What torch's weights-only unpickler refused, in words: the class or function it names (a whole pickled model:
    "torchvision.models.resnet.ResNet"), else its reason's first sentence, whole; None where `text` is no such
    refusal. A global of a module torch blocks (os.system: posix) is worded without "WeightsUnpickler error:" since
    torch 2.6, and was called a damaged archive."""
    blocked = re.search(r"unsupported GLOBAL (\S+) whose module \S+ is blocked", text)
    if blocked:
        return f"it holds a pickled {blocked[1]} object"
    if "WeightsUnpickler error:" not in text:
        return None
    reason = " ".join(text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0].split())
    if "GLOBAL " in reason:
        return f"it holds a pickled {reason.split('GLOBAL ', 1)[1].split()[0]} object"
    return f"it holds Python objects other than tensors, numbers and strings ({reason.split('. ')[0].rstrip('.')})"


def _unreadable(path: Path, err: BaseException, names: list[str] | None) -> str:
    """One line for a file torch.load refused: what it is, never torch's multi-sentence advice."""
    text = str(err)
    if names is None:
        return (f"{path} is not a readable checkpoint: not a zip archive as torch.save writes "
                f"(truncated, corrupt or another kind of file); {GIVE}")
    pickled = _pickled_objects(text)  # a pickle with objects weights_only does not allow
    if pickled:
        return (f"{path} is not a readable checkpoint: {pickled}, which convolab does not unpickle "
                f"(a checkpoint holds tensors, numbers and strings only); {GIVE}")
    first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(err).__name__
    return f"{path} is not a readable checkpoint: a damaged archive ({first[:120]}); {GIVE}"


def _torchscript_names(names: list[str]) -> bool:
    """Whether a zip's member names are a TorchScript archive's (its code and constants), not a checkpoint's."""
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def is_zip_archive(path: str | Path) -> bool:
    """Whether `path` is a file whose zip archive reads (what torch.save and torch.jit.save write)."""
    path = Path(path)
    return path.is_file() and _zip_names(path) is not None


def is_torchscript(path: str | Path) -> bool:
    """Whether `path` is a TorchScript file (`convolab export --format torchscript`, whatever its suffix)."""
    path = Path(path)
    names = _zip_names(path) if path.is_file() else None
    return names is not None and _torchscript_names(names)


def load_checkpoint(path: str | Path | dict[str, Any], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a convolab checkpoint, or a safetensors folder or file (`convolab export --format safetensors`);
    anything else gets a CheckpointError saying what is wrong. A record already read (a dict, e.g.
    published weights from `convolab.pretrained`) is passed through."""
    if isinstance(path, dict):
        if path.get("format") != FORMAT:
            raise CheckpointError(f"not a convolab checkpoint record (no '{FORMAT}' marker); {GIVE}")
        check_record(path, f"the record of {path.get('source', 'the weights')}", GIVE)
        return path
    path = user_path(path)
    if is_safetensors(path):
        return {"format": FORMAT, **load_safetensors(path)}
    if path.is_dir():
        folder, path = path, checkpoint_file(path)
        if path.name == "last.pt":
            log.warning("%s holds no best.pt (no epoch finished, or it was removed): its last.pt is read, the "
                        "run as it stopped", folder)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    names = _zip_names(path)
    if names is None and path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX export (`convolab export`), not a checkpoint; {EXPORT_READERS}")
    if names is not None and any(n.endswith(("/archive_format", "serialized_exported_program.json"))
                                 for n in names):  # (torch.export.save's archive: torch 2.7 and later, and before)
        raise CheckpointError(f"{path} is a torch.export program (`convolab export --format pt2`), not a checkpoint; "
                              f"{EXPORT_READERS}")
    if names is not None and _torchscript_names(names):
        raise CheckpointError(f"{path} is a TorchScript export (`convolab export --format torchscript`), not a "
                              f"checkpoint; {EXPORT_READERS}")
    try:
        with warnings.catch_warnings():  # torch's own notes on the file; the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  random bytes can fail deep in torch's unpickler (IndexError, KeyError...)
        raise CheckpointError(_unreadable(path, err, names)) from None
    if names is not None and (member := _failed_checksum(path)) is not None:  # (torch.load checks none)
        raise CheckpointError(f"{path} is damaged: its part {member} fails its checksum (bytes changed on the disk or "
                              "in a copy); restore it from a copy, or use the run's other checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a convolab checkpoint (no '{FORMAT}' marker); "
                              "give a last.pt or best.pt written by `convolab train`")
    check_record(state, path, GIVE)  # before a reader sizes the data by its image_size
    return state


def checkpoint_file(path: str | Path) -> Path:
    """The file `load_checkpoint` reads for `path`: a run folder's best.pt, else its last.pt; another path as it is."""
    path = user_path(path)
    if not path.is_dir() or is_safetensors(path):
        return path
    for name in ("best.pt", "last.pt"):
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{path} is a folder without best.pt or last.pt; give a checkpoint file or a run folder")


def trained_epoch(state: dict[str, Any], path: str | Path) -> dict[str, Any] | None:
    """Which epoch of its run a checkpoint read from `path` holds: {"file", "epoch" (epochs finished),
    "batch_in_epoch" (batches of the next one: a run stopped by a signal mid-epoch), "epochs" (the run's length, from
    its folder's config.json where there is one: a resumed run's), "chosen_by", "judged_on"}. chosen_by is the figure
    (`--monitor`, test_acc by default) whose best epoch these weights are, judged on the images `judged_on` names (the
    run's own test images, or validation images held out of its training split) (best.pt's, and a last.pt whose last
    epoch was the best); None otherwise; the whole None for weights of no run (published, a
    safetensors export). Read from the checkpoint, not its name."""
    epoch, batches = state.get("epoch"), state.get("batch_in_epoch", 0)
    try:
        config = json.loads(state["config"]) if isinstance(state.get("config"), str) else {}
        file = checkpoint_file(path)
        run = json.loads((file.parent / "config.json").read_text(encoding="utf-8")) \
            if (file.parent / "config.json").is_file() else {}
    except (ValueError, OSError):
        config, file, run = {}, Path(path), {}
    if not isinstance(epoch, int) or not isinstance(config, dict) or state.get("weights"):
        return None
    epochs = run.get("epochs") if isinstance(run, dict) and isinstance(run.get("epochs"), int) else config.get("epochs")
    chosen = (config.get("monitor") or "test_acc") if epoch > 0 and not batches and state.get("best_epoch") == epoch \
        else None
    # (judged on validation images --val-fraction held out of data with a test split of their own, or on test images)
    judged = "its validation images, not its test images" if state.get("validation_images") \
        else "the run's own test images"
    return {"file": str(file), "epoch": epoch, "batch_in_epoch": batches or 0, "epochs": epochs, "chosen_by": chosen,
            "judged_on": judged}


def served_weights(state: dict[str, Any], path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's test metrics were measured with: the EMA of a run trained with
    `--ema` (which `best.pt` was chosen on), else the trained weights. What evaluate, predict,
    features, export and --init-from use."""
    weights = state.get("ema", state.get("model"))
    if not isinstance(weights, dict):
        where = f"checkpoint {path}" if path is not None else "the checkpoint"
        raise CheckpointError(f"{where} holds no model weights (no 'model' entry); {GIVE}")
    return weights


def weights_mismatch(model: nn.Module, weights: dict[str, torch.Tensor]) -> str | None:
    """The first one or two differences between a model's state dict and `weights`, or None."""
    own = model.state_dict()
    found = [f"{key} is {'x'.join(map(str, weights[key].shape)) or 'a scalar'} in the checkpoint, "
             f"{'x'.join(map(str, own[key].shape)) or 'a scalar'} in the model"
             for key in own if key in weights and tuple(weights[key].shape) != tuple(own[key].shape)]
    found += [f"{key} holds {weights[key].dtype} values in the checkpoint, not numbers with a fraction"
              for key in own if key in weights and own[key].is_floating_point()
              and not weights[key].is_floating_point()]  # (cast without a word, the fractions cut)
    missing, extra = [k for k in own if k not in weights], [k for k in weights if k not in own]
    if missing:
        found.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        found.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    return "; ".join(found[:2]) if found else None


def layout_fields(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """What a record written now says of its weights' layout: the model's revision (`register_model`'s
    layout_changes) and the convolab that wrote it, which a refusal of an older layout names."""
    return {"layout": current_layout(name, options)[1], "convolab_version": __version__}


# Checkpoints record their layout revision from commit 2405e80 (2026-11-29 14:45 UTC) on. Revision 2 of the three
# models that have one came a little earlier, with commit 4d9b7dc (12:54 UTC): a file that records none was written
# either before revision 2 or between the two, so it may hold either; any later revision it surely predates.
UNRECORDED = ("records no layout revision, as files written before 2026-11-29 14:45 UTC do, so it may hold "
              "revision 1 or 2")
REVISION_2 = "commit 4d9b7dc, 2026-11-29 12:54 UTC"
_WARNED: set[str] = set()


def check_layout(state: dict[str, Any], where: str | Path) -> None:
    """Refuse, in one line, a record whose layout revision is not the one its model has here: its weights would
    load without a word and compute something else. A record of none (written before revisions were recorded)
    may be of revision 1 or 2: loaded with a warning, once a file, where the model is at revision 2 (it cannot
    tell which), and refused where the model is at a later one (which it surely predates)."""
    name, options = str(state.get("model_name", "")), state.get("model_options")
    if registered_name(name) is None:  # (recorded_model says what is wrong with the name)
        return
    if (problem := record_problem({k: state[k] for k in ("layout", "convolab_version") if k in state})) is not None:
        raise CheckpointError(f"{where}: {problem}; the file was edited or damaged; {GIVE}")
    model, current, changes = current_layout(name, options if isinstance(options, dict) else None)
    version = state.get("convolab_version")
    weights = f"{name} weights" if model == registered_name(name) else f"{name} weights on a {model} backbone"
    if "layout" not in state and current == 2 and is_builtin(model):  # (a user's revision 2: refused below)
        file = _read_from(where)  # (a run folder and its best.pt, however spelled: one file, one warning)
        key = str(Path(file).resolve()) if Path(file).exists() else str(where)
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning("%s %s of %s: if it was trained before revision 2 (%s: %s), its weights compute something "
                        "else here and it should be retrained; one trained since loads as it was trained",
                        file, UNRECORDED, weights, REVISION_2, changes[2])
        return
    # (none recorded: 1; of a model of ours at revision 3 or later, 2 at most: revision 2 may predate the record)
    assumed = "layout" not in state and current > 2 and is_builtin(model)
    held = int(state.get("layout", 2 if assumed else 1))
    if held > current:
        newer = f"a newer convolab ({version})" if version and version != __version__ else \
            "a newer convolab" + ("" if version else " (its version unrecorded)")
        raise CheckpointError(f"{where} holds {weights} of layout revision {held}, written by {newer}; this "
                              f"convolab ({__version__}) builds revision {current} at most: upgrade convolab")
    if held < current:
        later = range(held + 1, current + 1)
        which = f"revision {current}" if len(later) == 1 else f"revisions {', '.join(map(str, later))}"
        notes = changes[current] if len(later) == 1 else "; ".join(f"{r}: {changes[r]}" for r in later)
        wrote = (f"convolab {version}, which wrote it" if version
                 else "the older convolab that wrote it (the file does not record which)")
        of = f"of layout revision {held}" + (f" at most (it {UNRECORDED})" if assumed else "")
        raise CheckpointError(f"{where} holds {weights} {of}, which this convolab no longer builds: {which} changed "
                              f"what the same weights compute ({notes}); retrain the model, or use the file with "
                              f"{wrote}")


def recorded_model(state: dict[str, Any], where: str | Path) -> nn.Module:
    """The (untrained) model a checkpoint's record names, with its classes, channels and options; a model of
    no registered name, or one registered in another process only (a user's own), said as such; a record of
    another layout revision than the model's (`check_layout`) refused."""
    check_layout(state, where)
    name = str(state["model_name"])
    try:
        return create_model(name, num_classes=int(state["num_classes"]), in_chans=int(state["in_chans"]),
                            **dict(state.get("model_options", {})))
    except UnknownModelError:
        if not name:
            raise CheckpointError(f"{where} holds a model of no registered name (built outside "
                                  "convolab.register_model and given to Trainer): build it yourself and load "
                                  "checkpoint['model'] into it, or register it and train it by name") from None
        raise CheckpointError(f"{where} holds a model named {name!r}, which is not registered here: a model of "
                              "your own is known to the process that imports the module registering it "
                              "(convolab.register_model), so use it from Python there; the convolab command "
                              "knows its own models only") from None


def checkpoint_model(state: dict[str, Any], path: str | Path | dict[str, Any]) -> nn.Module:
    """The model a checkpoint's record describes (name, classes, channels, options), with its served
    weights, in eval mode; a CheckpointError naming the first differences when they do not fit, or an
    image_size the model cannot take (one other than its own is tried with one zero image). The record's
    values were checked where it was read (`load_checkpoint`, `load_safetensors`: `check_record`)."""
    if isinstance(path, dict):  # a record read elsewhere: named by where it came from
        path = str(path.get("source", "the weights"))
    give = GIVE_SAFETENSORS if is_safetensors(path) else GIVE
    lacking = [key for key in RECORD if key not in state]
    if lacking:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, lacking))} of its model record; {give}")
    weights = served_weights(state, path)
    options = state.get("model_options", {})
    check_layout(state, _read_from(path))
    try:
        model = recorded_model(state, _read_from(path))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: its model record ({state['model_name']!r}, {options}) "
                              f"does not build a model ({str(err).splitlines()[0][:120]}); {GIVE}") from None
    problem = weights_mismatch(model, weights)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path}: its weights do not match its own model record "
                              f"({state['model_name']}, {int(state['num_classes'])} classes): {problem}; "
                              f"the file was altered or mixed from two runs; {GIVE}")
    model.load_state_dict(weights)
    model.eval()
    size = [int(s) for s in state["image_size"]]
    own = _own_size(model)
    if own is not None and own != size and not runs_at(model, int(state["in_chans"]), size) \
            and runs_at(model, int(state["in_chans"]), own):  # (a model that fails at its own size: not the size)
        raise CheckpointError(f"checkpoint {path}: its 'image_size' {size} does not fit {state['model_name']}, whose "
                              f"layers are built for {own}; the file was edited or damaged; {give}")
    return model


def _read_from(path: str | Path) -> str | Path:
    """The file a run folder's record was read from (`load_checkpoint`: best.pt, else last.pt), for a message
    that names the file; any other path as it is."""
    folder = Path(path)
    if not folder.is_dir() or is_safetensors(folder):
        return path
    return next((folder / name for name in ("best.pt", "last.pt") if (folder / name).is_file()), path)


def _own_size(model: nn.Module) -> list[int] | None:
    """The [height, width] a model is built for (its data_config), or None."""
    size = getattr(getattr(model, "data_config", None), "input_size", None)
    return [int(s) for s in size[-2:]] if size is not None and len(size) == 3 else None


def runs_at(model: nn.Module, in_chans: int, size: int | Sequence[int],
            device: torch.device | None = None, every_output: bool = False) -> bool:
    """Whether a zero batch of one image of `size` (px, or [height, width]) goes through the model (eval mode, no
    gradients); with `every_output`, through every head training runs (`forward_outputs`: auxiliary and task
    heads too), else through the main output's path."""
    height, width = (size, size) if isinstance(size, int) else size
    forward = model.forward_outputs if every_output and hasattr(model, "forward_outputs") else model
    try:
        with torch.no_grad():
            forward(torch.zeros(1, in_chans, int(height), int(width), device=device))
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, MemoryError) as err:  # (shapes that do not fit: RuntimeError; a model's own
        # size check: either) -- but an image too large for the memory is not a shape the layers refuse
        if isinstance(err, MemoryError) or "allocate" in str(err):
            raise ConfigError(f"one {int(height)}x{int(width)} px image does not fit in this machine's memory "
                              "(allocating its activations failed); give a smaller `image_size`") from None
        return False
    return True
