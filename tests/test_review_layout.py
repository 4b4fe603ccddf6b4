"""Review of layout revisions: models whose computation changed without a tensor changing shape (the CIFAR
pre-activation bottlenecks' stride, a pre-activation net's first shortcut) are at layout revision 2; every
record written now says its revision and the convolab that wrote it, and a record of an older revision or a
newer one is refused in one line wherever it would become a model, rather than loaded silently into layers that
compute something else. A record of none, written before revisions were recorded, may hold revision 1 or 2: it
loads with a warning naming the change."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_pretrained import seed_torchvision  # (offline_caches: a fixture of conftest.py)
from torch import nn

import convolab
from convolab import _registry, register_model
from convolab._version import __version__
from convolab.cli import main
from convolab.errors import CheckpointError, RegistryError
from convolab.models import create_model
from convolab.pretrained import weights_record
from convolab.training import Trainer
from convolab.training.checkpoint import FORMAT, checkpoint_model, load_checkpoint
from convolab.training.inference import load_trained_model

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

STRIDE = "revision 2 changed what the same weights compute (the downsampling units' stride moved from the 3x3 to " \
         "the first 1x1"
OLD = "holds preact_resnet164 weights of layout revision 1, which this convolab no longer builds: " + STRIDE
UNRECORDED = "use the file with the older convolab that wrote it (the file does not record which)"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """preact_resnet164 (at revision 2) trained for two steps of 8 px images: its run folder, never changed."""
    root = tmp_path_factory.mktemp("layout")
    for name in ("cat", "dog"):
        (root / "two" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (8, 8), i * 20 + (name == "dog") * 7).save(root / "two" / name / f"{i}.png")
    assert main(["train", "preact_resnet164", "--data", str(root / "two"), "--val-fraction", "0.5", "--epochs", "1",
                 "--batch-size", "4", "--image-size", "8", "--no-progress", "--threads", "1",
                 "--output", str(root / "run")]) == 0
    return root / "run"


def as_before_revisions(path: Path, layout: int | None = 1) -> None:
    """Rewrite a checkpoint as of an older revision (`layout`, its convolab unrecorded), or with None as convolab
    wrote it before layouts were recorded: without the two fields."""
    state = torch.load(path, weights_only=True)
    for key in ("layout", "convolab_version"):
        state.pop(key, None)
    torch.save({**state, **({} if layout is None else {"layout": layout})}, path)


def record(name: str, **extra) -> dict:
    """A checkpoint record of `name` (2 classes, its own input), built without training; `extra` added."""
    model = create_model(name, num_classes=2, **extra.pop("options", {}))
    chans, *size = model.data_config.input_size
    return {"format": FORMAT, "model_name": name, "model_options": dict(getattr(model, "model_options", {})),
            "num_classes": 2, "in_chans": chans, "classes": ["a", "b"], "image_size": size,
            "mean": [0.5] * chans, "std": [0.25] * chans, "model": model.state_dict(), **extra}


# ----- 1. what is written ---------------------------------------------------------------------------------------
def test_checkpoints_written_now_record_the_layout_and_the_convolab_that_wrote_them(run):
    for name in ("best.pt", "last.pt"):
        state = torch.load(run / name, weights_only=True)
        assert (state["layout"], state["convolab_version"]) == (2, __version__), name


def test_a_safetensors_export_records_them_too_and_without_them_is_refused(run, tmp_path, capsys):
    assert main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "st")]) == 0
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert (config["layout"], config["convolab_version"]) == (2, __version__)
    load_trained_model(tmp_path / "st")  # (current: it loads)
    config["layout"] = 1  # (an older revision; one recording none loads with a warning, tested below)
    config.pop("convolab_version")
    (tmp_path / "st" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{tmp_path / 'st'} {OLD}")):
        load_trained_model(tmp_path / "st")


def test_the_record_of_published_weights_is_of_the_current_layout(offline_caches, monkeypatch):  # noqa: F811
    seed_torchvision(offline_caches, "resnet18")
    state = weights_record("resnet18", True)
    assert (state["layout"], state["convolab_version"]) == (1, __version__)
    # made by today's converters, they pass the check whatever revision the model is at
    entry = _registry._ENTRIES["resnet18"]
    monkeypatch.setitem(_registry._ENTRIES, "resnet18", dataclasses.replace(entry, layout_changes={2: "a change"}))
    model = convolab.create_model("resnet18", pretrained=True)
    assert model.pretrained_cfg["weights"].startswith("torchvision:")
    assert weights_record("resnet18", True)["layout"] == 2


# ----- 2. an older revision: refused ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, change", [
    ("preact_resnet164", "the downsampling units' stride moved from the 3x3 to the first 1x1"),
    ("preact_resnet1001", "the downsampling units' stride moved from the 3x3 to the first 1x1"),
    ("preact_resnet18", "the first unit's shortcut adds the activated input, not the stem's output")])
def test_an_old_record_of_a_changed_model_is_refused_by_checkpoint_model(name, change):
    state = record(name, layout=1)
    with pytest.raises(CheckpointError) as err:
        checkpoint_model(state, "old.pt")
    line = str(err.value)
    assert line.startswith(f"old.pt holds {name} weights of layout revision 1, which this convolab no longer "
                           f"builds: revision 2 changed what the same weights compute ({change}")
    assert line.endswith(f"retrain the model, or {UNRECORDED}") and "\n" not in line
    checkpoint_model({**state, "layout": 2}, "new.pt")  # the same weights recorded at revision 2: loaded


@pytest.mark.parametrize("name", ["preact_resnet164", "preact_resnet18"])
def test_a_record_of_no_revision_may_be_of_either_and_loads_with_one_warning_a_file(name, caplog):
    # (written before 2405e80 recorded layouts: before 4d9b7dc's revision 2, or between the two commits)
    state = record(name)
    with caplog.at_level("WARNING", logger="convolab"):
        model = checkpoint_model(state, f"{name}-unrecorded.pt")
        checkpoint_model(state, f"{name}-unrecorded.pt")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith(
        f"{name}-unrecorded.pt records no layout revision, as files written before 2026-11-29 14:45 UTC do, so it "
        f"may hold revision 1 or 2 of {name} weights: if it was trained before revision 2 (commit 4d9b7dc"), warned
    assert "should be retrained; one trained since loads as it was trained" in warned[0]
    reference = create_model(name, num_classes=2).eval()
    reference.load_state_dict(state["model"])
    x = torch.randn(1, 3, *state["image_size"])
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_a_run_folder_of_no_revision_is_warned_about_once_naming_its_file(tmp_path, caplog):
    """(before: predict and evaluate of such a run folder warned twice, as RUN/best.pt and as RUN; export three
    times)"""
    state = record("preact_resnet18")
    run = tmp_path / "run"
    run.mkdir()
    torch.save(state, run / "best.pt")
    with caplog.at_level("WARNING", logger="convolab"):
        checkpoint_model(state, run)
        checkpoint_model(state, run / "best.pt")
        checkpoint_model(state, tmp_path / "." / "run")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and warned[0].startswith(f"{run / 'best.pt'} records no layout revision"), warned


def test_a_safetensors_export_of_a_record_of_no_revision_stays_of_none(run, tmp_path):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    as_before_revisions(old / "best.pt", layout=None)
    assert main(["export", str(old / "best.pt"), "--format", "safetensors", "--out", str(tmp_path / "st")]) == 0
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert "layout" not in config and "convolab_version" not in config  # (not passed off as revision 1, nor as new)
    load_trained_model(tmp_path / "st")  # (loaded, with the warning)


def test_a_record_of_no_revision_is_refused_by_a_model_at_revision_3(fresh_registry):
    # (it surely predates a revision 3, made after revisions were recorded)
    changes = {2: "the stride moved", 3: "the shortcut moved"}
    _registry.register_model(layout_changes=changes)(_registry.get_entry("preact_resnet164").fn)
    with pytest.raises(CheckpointError, match=r"holds preact_resnet164 weights of layout revision 2 at most \(it "
                                              r"records no layout revision.*revision 3 changed what the same "
                                              r"weights compute \(the shortcut moved\)"):
        checkpoint_model(record("preact_resnet164"), "old.pt")


def test_an_old_checkpoint_is_refused_by_the_loaders_of_the_verbs_and_of_create_model(run, tmp_path):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    as_before_revisions(old / "best.pt")
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{old / 'best.pt'} {OLD}")):
        load_trained_model(old)  # (evaluate, predict, features, export, finetune)
    with pytest.raises(CheckpointError, match="holds preact_resnet164 weights of layout revision 1"):
        convolab.create_model("preact_resnet164", pretrained=old / "best.pt")
    load_trained_model(old / "last.pt")  # last.pt, untouched, is of this revision


def test_an_old_record_names_the_convolab_that_wrote_it_where_recorded():
    with pytest.raises(CheckpointError, match=r"retrain the model, or use the file with convolab 0\.0\.9, which "
                                              r"wrote it$"):
        checkpoint_model(record("preact_resnet164", layout=1, convolab_version="0.0.9"), "old.pt")


def test_resuming_an_old_last_pt_is_refused_in_one_line(run, tmp_path, capsys):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    as_before_revisions(old / "last.pt")
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{old / 'last.pt'} {OLD}")):
        Trainer.resume(old)
    capsys.readouterr()
    assert main(["train", "--resume", str(old), "--epochs", "2", "--no-progress", "--threads", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{old / 'last.pt'} {OLD}" in lines[0], lines


def test_resuming_an_old_last_pt_with_its_model_given_is_refused_too(run, tmp_path):
    old = tmp_path / "run"
    shutil.copytree(run, old)
    as_before_revisions(old / "last.pt")
    given = create_model("preact_resnet164", num_classes=2, in_chans=1)
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{old / 'last.pt'} {OLD}")):
        Trainer.resume(old, model=given)


def test_a_trainer_refuses_an_old_state_loaded_into_it(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    trainer = Trainer.resume(tmp_path / "run")
    state = {**load_checkpoint(run / "last.pt"), "layout": 1}
    with pytest.raises(CheckpointError, match="^" + re.escape(f"the checkpoint {OLD}")):
        trainer.load_state_dict(state)
    trainer._claim.release()  # (the folder's lock, which a resumed trainer holds until it fits)


def test_a_multitask_record_on_a_changed_backbone_is_refused():
    state = record("multitask", options={"backbone": "preact_resnet18", "in_chans": 3}, layout=1)
    with pytest.raises(CheckpointError, match="^m.pt holds multitask weights on a preact_resnet18 backbone of layout "
                                              "revision 1, which this convolab no longer builds"):
        checkpoint_model(state, "m.pt")
    assert _registry.current_layout("multitask", state["model_options"])[:2] == ("preact_resnet18", 2)


# ----- 3. unchanged models load as before ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet20", "lenet5", "preact_resnet50"])
def test_old_records_of_unchanged_models_load_as_before(name):
    # (preact_resnet50's first unit projects the activated input, before as now: revision 1)
    assert _registry.get_entry(name).layout == 1
    state = record(name)
    model = checkpoint_model(state, "old.pt")
    x = torch.randn(1, state["in_chans"], *state["image_size"])
    reference = create_model(name, num_classes=2)
    reference.load_state_dict(state["model"])
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    checkpoint_model({**state, "layout": 1, "convolab_version": __version__}, "now.pt")


# ----- 4. a newer revision, or a damaged one -------------------------------------------------------------------
@pytest.mark.parametrize("name, held, current", [("preact_resnet164", 3, 2), ("lenet5", 2, 1)])
def test_a_record_of_a_newer_layout_is_refused(name, held, current):
    with pytest.raises(CheckpointError) as err:
        checkpoint_model(record(name, layout=held, convolab_version="9.9.0"), "new.pt")
    assert str(err.value) == (f"new.pt holds {name} weights of layout revision {held}, written by a newer convolab "
                              f"(9.9.0); this convolab ({__version__}) builds revision {current} at most: "
                              "upgrade convolab")


@pytest.mark.parametrize("value", ["2", 0, 1.5, True])
def test_a_layout_that_is_no_revision_is_refused_as_damaged(value):
    with pytest.raises(CheckpointError, match="its 'layout' is .*, not a layout revision"):
        load_checkpoint(record("lenet5", layout=value))


# ----- 5. the registry ---------------------------------------------------------------------------------------------
def tiny(num_classes: int = 2, in_chans: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def test_a_users_model_is_at_revision_1_and_its_changes_are_named_on_refusal(fresh_registry):
    def ext_layout_plain(num_classes: int = 2, in_chans: int = 1) -> nn.Module:
        return tiny(num_classes, in_chans)

    def ext_layout_twice(num_classes: int = 2, in_chans: int = 1) -> nn.Module:
        return tiny(num_classes, in_chans)

    register_model(ext_layout_plain)
    register_model(layout_changes={2: "the pool moved", 3: "the conv pads"})(ext_layout_twice)
    assert (_registry.get_entry("ext_layout_plain").layout, _registry.get_entry("ext_layout_twice").layout) == (1, 3)
    state = {"format": FORMAT, "model_name": "ext_layout_twice", "num_classes": 2, "in_chans": 1, "classes": ["a", "b"],
             "image_size": [8, 8], "mean": [0.5], "std": [0.5], "model": tiny().state_dict()}
    with pytest.raises(CheckpointError, match=r"^u.pt holds ext_layout_twice weights of layout revision 1, which this "
                                              r"convolab no longer builds: revisions 2, 3 changed what the same "
                                              r"weights compute \(2: the pool moved; 3: the conv pads\)"):
        checkpoint_model(state, "u.pt")
    checkpoint_model({**state, "layout": 3}, "u.pt")
    checkpoint_model({**state, "model_name": "ext_layout_plain"}, "p.pt")


@pytest.mark.parametrize("options", [{"layout_changes": {3: "a change"}}, {"layout_changes": {2: ""}},
                                     {"layout_changes": {2: "a", 4: "b"}},
                                     {"layout_changes": {2: "a"}, "layout_from": "backbone"}])
def test_register_model_refuses_layout_changes_that_are_no_revisions(options, fresh_registry):
    with pytest.raises(RegistryError, match="layout"):
        register_model(**options)(tiny)
