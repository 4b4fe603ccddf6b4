"""`--format pt2`: a model captured by torch.export and saved by torch.export.save, checked against PyTorch, and
read by `predict` and `evaluate` as the checkpoint is; plain torch.export.load runs it without convolab."""
from __future__ import annotations

import io
import json

import pytest
import torch
from conftest import DataDependent, evaluated_alike, resnet20_with_batch_norm_statistics

from convolab.cli import main
from convolab.data.augment import BatchTransform
from convolab.export import ExportError, ProgramClassifier, export_program, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


@pytest.fixture(scope="module")
def run_dir(digits_run):
    """lenet5_modern trained for one epoch on the digits (tests/conftest.py)."""
    return digits_run


def test_the_pt2_export_runs_in_plain_torch_and_scores_as_the_checkpoint(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "pt2"]) == 0
    path = run_dir / "best.pt2"  # (the default output, beside best.pt)
    assert f"wrote {path} (pt2, lenet5_modern, input 1x28x28, any batch size" in capsys.readouterr().out
    extra = {"convolab.json": ""}
    program = torch.export.load(io.BytesIO(path.read_bytes()), extra_files=extra)  # (no convolab class needed)
    assert json.loads(extra["convolab.json"])["model_name"] == "lenet5_modern"
    model, _ = model_from_checkpoint(run_dir)
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        assert (program.module()(x) - model(x)).abs().max().item() <= 1e-5

    from_checkpoint, from_program = evaluated_alike(run_dir, path, capsys)
    assert from_program["images"] == from_checkpoint["images"] > 0
    assert from_program["top1"] == pytest.approx(from_checkpoint["top1"], abs=1e-9)
    assert from_program["per_class"] == pytest.approx(from_checkpoint["per_class"], abs=1e-9)


def test_predict_reads_a_pt2_export_as_it_reads_the_checkpoint(run_dir, tmp_path, capsys):
    from PIL import Image

    from convolab.data import load_mnist5k

    images = load_mnist5k().test.images
    paths = [str(tmp_path / f"d{i}.png") for i in range(3)]
    for i, path in enumerate(paths):
        Image.fromarray(images[i, 0].numpy(), mode="L").save(path)
    out = tmp_path / "fixed.pt2"  # (the format follows from the suffix)
    assert main(["export", str(run_dir), "--batch-size", "2", "--out", str(out)]) == 0
    assert "(pt2, lenet5_modern, input 1x28x28, batch size 2" in capsys.readouterr().out
    assert ProgramClassifier(out).fixed_batch == 2  # (3 images: two batches, the last padded)
    assert main(["predict", str(run_dir), *paths, "--topk", "2", "--json"]) == 0
    from_checkpoint = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", str(out), *paths, "--topk", "2", "--json"]) == 0
    from_program = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(from_program) == len(from_checkpoint) == 3
    for got, want in zip(from_program, from_checkpoint, strict=True):
        assert got["file"] == want["file"]
        assert [name for name, _ in got["top"]] == [name for name, _ in want["top"]]
        assert [p for _, p in got["top"]] == pytest.approx([p for _, p in want["top"]], abs=1e-5)


def test_a_batch_norm_net_is_folded_and_its_program_gives_the_eager_logits(tmp_path):
    model = resnet20_with_batch_norm_statistics()
    result = export_program(model, tmp_path / "r.pt2", (3, 32, 32), dynamic_batch=True)
    assert result.folded_bn == 19 and result.batch_sizes_checked == (1, 3) and result.max_abs_diff <= 1e-4
    classifier = ProgramClassifier(tmp_path / "r.pt2")
    assert classifier.fixed_batch is None
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    meta = classifier.meta
    with torch.no_grad():
        expected = model(BatchTransform(meta.in_chans, meta.image_size, meta.mean, meta.std)(images))
    assert torch.allclose(classifier.logits(images), expected, atol=1e-4)


def test_a_model_torch_export_cannot_capture_is_one_line_and_nothing_is_written(tmp_path):
    with pytest.raises(ExportError) as err:
        export_program(DataDependent(), tmp_path / "m.pt2", (1, 2, 2))
    line = str(err.value)
    assert "\n" not in line and line.startswith("torch.export could not capture the model (")
    assert line.endswith("; export it as TorchScript or ONNX instead")
    assert list(tmp_path.iterdir()) == []
