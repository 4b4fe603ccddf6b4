"""list_models as timm's takes it (several patterns, a pretrained filter), and the output probe's scratch file
named after its writer, so that one a kill leaves is removed later like atomic_write's temporaries."""
from __future__ import annotations

import os
import tempfile

import pytest

import convolab
from convolab import _paths
from convolab._atomic import WRITTEN_BY, remove_stale_temporaries
from convolab.errors import RegistryError
from convolab.models import get_entry


def test_list_models_takes_several_patterns_as_timms_does():
    assert convolab.list_models(["resnet18", "densenet12*"]) == ["densenet121", "resnet18"]
    assert convolab.list_models(("lenet5", "LeNet5_BN")) == ["lenet5", "lenet5_bn"]
    assert convolab.list_models(["no_such*"]) == []


def test_list_models_pretrained_keeps_the_models_that_load_published_weights():
    found = convolab.list_models(pretrained=True)
    assert found and all(get_entry(n).pretrained_sources for n in found)
    assert "resnet50" in found and "densenet121" in found and "resnet20" not in found and "lenet5" not in found
    assert convolab.list_models("resnet*", pretrained=True) == ["resnet18", "resnet34", "resnet50", "resnet101",
                                                                "resnet152"]  # (timm's natural order)
    aliases = set(convolab.list_models(include_aliases=True, pretrained=True)) - set(found)
    assert all(get_entry(a).pretrained_sources for a in aliases)


def test_list_models_refuses_what_is_no_pattern_in_one_line():
    with pytest.raises(RegistryError, match="a pattern or a list of patterns"):
        convolab.list_models(3)
    with pytest.raises(RegistryError, match="a pattern or a list of patterns"):
        convolab.list_models(["resnet*", None])


def test_the_output_probes_scratch_file_names_its_writer_and_is_swept_once_dead(tmp_path, monkeypatch):
    made = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(os.path.basename(name))
        return fd, name

    monkeypatch.setattr(_paths.tempfile, "mkstemp", spy)
    _paths.probe_output(tmp_path / "out.onnx", "--out", kind="file")
    assert made and WRITTEN_BY.fullmatch(made[0]), made  # `.NAME.SPACE-PID.XXXXXXXX.tmp`
    assert not list(tmp_path.iterdir())  # (removed again)
    # one left by a writer that is gone is swept; a live writer's stays
    dead = made[0].replace(f"-{os.getpid()}.", "-999999999.")
    (tmp_path / dead).write_bytes(b"x")
    (tmp_path / made[0]).write_bytes(b"x")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [dead]
    assert (tmp_path / made[0]).exists()
