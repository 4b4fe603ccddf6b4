"""ONNX written by torch's torch.export-based exporter (`--onnx-exporter dynamo`): one checked file, read by
`predict` and `evaluate` as the TorchScript-based exporter's is, and one line where it cannot be used."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import DataDependent, evaluated_alike, resnet20_with_batch_norm_statistics

import convolab
from convolab.cli import main
from convolab.export import ExportError, OnnxClassifier, export_onnx, onnx_graph

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
needs_onnxscript = pytest.mark.skipif(onnx_graph.dynamo_unavailable() != "",
                                      reason=onnx_graph.dynamo_unavailable() or "available")


@pytest.fixture(scope="module")
def run_dir(digits_run):
    """lenet5_modern trained for one epoch on the digits (tests/conftest.py)."""
    return digits_run


@needs_onnxscript
def test_the_dynamo_export_is_one_checked_file_that_evaluate_and_predict_read_as_the_checkpoint(run_dir, tmp_path,
                                                                                                  capsys):
    out = tmp_path / "digits.onnx"
    assert main(["export", str(run_dir), "--onnx-exporter", "dynamo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx, dynamo exporter, lenet5_modern" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.onnx"]  # (no digits.onnx.data beside it)
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version >= 18  # (the dynamo exporter's own opset; the other writes 17)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model_name"] == "lenet5_modern" and json.loads(meta["in_chans"]) == 1
    assert OnnxClassifier(out).fixed_batch is None  # (any batch size)

    from_checkpoint, from_export = evaluated_alike(run_dir, out, capsys)
    assert from_export["images"] == from_checkpoint["images"] > 0
    assert from_export["top1"] == pytest.approx(from_checkpoint["top1"], abs=1e-9)


@needs_onnxscript
def test_a_fixed_batch_dynamo_export_of_a_batch_norm_net_gives_the_torchscript_exporters_outputs(tmp_path):
    model = resnet20_with_batch_norm_statistics()
    files = {}
    for exporter in ("dynamo", "torchscript"):
        files[exporter] = tmp_path / f"{exporter}.onnx"
        result = export_onnx(model, files[exporter], (3, 32, 32), batch_size=2, exporter=exporter)
        assert result.folded_bn == 19 and result.batch_sizes_checked == (2,) and result.max_abs_diff <= 1e-4
    dynamo, classic = OnnxClassifier(files["dynamo"]), OnnxClassifier(files["torchscript"])
    assert dynamo.fixed_batch == classic.fixed_batch == 2
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)  # (5: the last chunk padded to the batch)
    assert torch.allclose(dynamo.logits(images), classic.logits(images), atol=1e-5)


@needs_onnxscript
def test_a_model_torch_export_cannot_capture_is_one_line_naming_the_other_exporter(tmp_path):
    with pytest.raises(ExportError) as err:
        export_onnx(DataDependent(), tmp_path / "m.onnx", (1, 2, 2), exporter="dynamo")
    line = str(err.value)
    assert "\n" not in line and line.startswith("torch.export could not capture the model (")
    assert line.endswith("; export it with `exporter` torchscript")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(onnx_graph.dynamo_unavailable() != "" and "onnxscript" not in onnx_graph.dynamo_unavailable(),
                    reason="this torch has no usable dynamo exporter, said before onnxscript is sought")
def test_without_onnxscript_the_dynamo_exporter_is_refused_in_one_line(tmp_path, monkeypatch):
    real = onnx_graph.importlib.util.find_spec
    monkeypatch.setattr(onnx_graph.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ExportError, match=r"^the dynamo ONNX exporter needs the onnxscript package: pip install "
                                          r"onnxscript .*, or use `exporter` torchscript$"):
        export_onnx(convolab.create_model("lenet5"), tmp_path / "m.onnx", (1, 28, 28), exporter="dynamo")
    assert list(tmp_path.iterdir()) == []


def test_a_torch_without_the_dynamo_exporter_is_refused_in_one_line(tmp_path, monkeypatch):
    def old_export(model, args, f, export_params=True, verbose=False, opset_version=None):  # (torch 2.4's kind)
        raise AssertionError("not called")

    monkeypatch.setattr(torch.onnx, "export", old_export)
    with pytest.raises(ExportError, match=r"^the dynamo ONNX exporter needs torch 2.7 or later \(this is torch .*\): "
                                          r"upgrade torch, or use `exporter` torchscript$"):
        export_onnx(convolab.create_model("lenet5"), tmp_path / "m.onnx", (1, 28, 28), exporter="dynamo")
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "2.6.0+cu124")  # (torch 2.5 and 2.6 have it, but fail resnet20)
    with pytest.raises(ExportError, match=r"^the dynamo ONNX exporter needs torch 2.7 or later \(this is torch "
                                          r"2.6.0\+cu124\)"):
        export_onnx(convolab.create_model("lenet5"), tmp_path / "m.onnx", (1, 28, 28), exporter="dynamo")


def test_an_unknown_exporter_is_refused_before_any_work(tmp_path):
    with pytest.raises(convolab.errors.ConfigError, match="exporter must be one of torchscript, dynamo, got 'tvm'"):
        export_onnx(convolab.create_model("lenet5"), tmp_path / "m.onnx", (1, 28, 28), exporter="tvm")


def test_the_default_exporter_is_still_the_torchscript_one(run_dir, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert "(onnx, torchscript exporter, lenet5_modern" in capsys.readouterr().out
    assert onnx.load(str(out)).opset_import[0].version == 17
