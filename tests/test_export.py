"""Export: batch-norm folding, ONNX and TorchScript files checked against PyTorch, the export
verb, and prediction with an exported ONNX model on real PNG digits."""
from __future__ import annotations

import copy
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import convolab
from convolab.cli import main
from convolab.errors import ConfigError
from convolab.export import (
    ExportError,
    ExportMeta,
    TorchScriptClassifier,
    conv_bn_pairs,
    export_onnx,
    export_safetensors,
    export_torchscript,
    fold_batchnorm,
    model_from_checkpoint,
    predict_onnx,
    read_torchscript_meta,
)
from convolab.export.fold import count_batchnorm
from convolab.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# Smallest inputs each network runs at (Inception-v3's 75 px is torchvision's minimum).
SIZES = {"lenet5": 28, "googlenet_tv": 64, "resnet18": 64, "inception_v3": 75, "densenet121": 64,
         "preact_resnet18": 32}
_MODELS: dict[str, nn.Module] = {}


@torch.no_grad()
def trained_like(name: str, calibrated: bool = False) -> nn.Module:
    """Random weights with non-trivial BN statistics and affine parameters; cached.

    Default: statistics drawn near the identity, so logits stay O(1) and float32 round-off small.
    `calibrated`: statistics measured on a random batch, as training leaves them; at these tiny
    inputs some channels then have near-zero variance, and the float32 network itself differs
    from its float64 twin by up to ~2e-4 (Inception-v3 at 75 px), so those are compared in float64.
    """
    key = f"{name}-{calibrated}"
    if key not in _MODELS:
        torch.manual_seed(0)
        model = convolab.create_model(name)
        for m in model.modules():  # PyTorch's default scale, whatever the model's own init (Inception-v3's std 0.1
            if isinstance(m, (nn.Conv2d, nn.Linear)):  # compounds over 95 layers into logits of 1e3 at random)
                m.reset_parameters()
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.weight.uniform_(0.5, 1.0)
            bn.bias.normal_(0, 0.1)
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(1.0, 2.0)
            bn.momentum = None  # cumulative average: one batch sets the statistics to its own
        if calibrated:
            size = SIZES[name]
            model.train()(torch.randn(32, model.in_chans, size, size))
        _MODELS[key] = model.eval()
    return _MODELS[key]


def sample(name: str, n: int = 2, seed: int = 1) -> torch.Tensor:
    size, chans = SIZES[name], trained_like(name).in_chans
    return torch.randn(n, chans, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["lenet5", "googlenet_tv", "resnet18", "inception_v3", "densenet121"])
def test_folded_model_matches_unfolded_to_1e5(name):
    model = trained_like(name)
    folded = fold_batchnorm(model)
    x = sample(name)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max().item() <= 1e-5
    assert folded is not model and not folded.training


@pytest.mark.parametrize("name", ["googlenet_tv", "densenet121"])
def test_folding_is_exact_with_statistics_measured_on_data(name):
    # In float64 the only difference left is the folding itself.
    model = copy.deepcopy(trained_like(name, calibrated=True)).double()
    x = sample(name, n=1).double()
    with torch.no_grad():
        assert (fold_batchnorm(model)(x) - model(x)).abs().max().item() <= 1e-9


@pytest.mark.parametrize("name,left", [("googlenet_tv", 0), ("resnet18", 0), ("inception_v3", 0)])
def test_fold_removes_every_post_conv_batchnorm(name, left):
    assert count_batchnorm(fold_batchnorm(trained_like(name))) == left


def test_fold_leaves_pre_activation_batchnorms_alone():
    # DenseNet: only conv0->norm0 and each layer's bottleneck conv1->norm2 feed a BN from a conv;
    # norm1 and the transitions' norms read a concatenation or a pooled map.
    pairs = conv_bn_pairs(trained_like("densenet121"))
    assert ("features.conv0", "features.norm0") in pairs
    assert all(c.endswith(".conv1") and b == c[:-len("conv1")] + "norm2" for c, b in pairs[1:])
    assert len(pairs) == 1 + 58
    # Pre-activation ResNet: bn1 reads the block input and the stem has no BN.
    preact = trained_like("preact_resnet18")
    pairs = conv_bn_pairs(preact)
    assert pairs and all(c.endswith(".conv1") and b.endswith(".bn2") for c, b in pairs)
    x = sample("preact_resnet18")
    with torch.no_grad():
        assert (fold_batchnorm(preact)(x) - preact(x)).abs().max().item() <= 1e-5


class ConvUsedTwice(nn.Module):
    """conv -> bn registered in that order, but the conv's output also feeds the sum."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class BnBeforeConv(nn.Module):
    """conv then bn in registration order, bn applied first: a registration walk would fold it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(x))


@pytest.mark.parametrize("cls", [ConvUsedTwice, BnBeforeConv])
def test_fold_refuses_pairs_the_data_flow_does_not_support(cls):
    model = cls().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2)
    assert conv_bn_pairs(model) == []
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(fold_batchnorm(model)(x), model(x))


# These four at their SIZES with a dynamic batch; every registered model, at its smallest input, is
# exported to ONNX and TorchScript (and traced with torch.fx) by tests/test_registry_sweep.py.
@pytest.mark.parametrize("name", ["lenet5", "googlenet_tv", "resnet18", "inception_v3"])
def test_onnx_export_agrees_with_pytorch(tmp_path, name):
    model = trained_like(name)
    size = SIZES[name]
    path = tmp_path / f"{name}.onnx"
    result = export_onnx(model, path, (model.in_chans, size, size), dynamic_batch=True)
    assert result.max_abs_diff <= 1e-4 and result.batch_sizes_checked == (1, 3)
    assert result.folded_bn == count_batchnorm(model)
    # Checked again here, on inputs the export did not see, at a third batch size.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = sample(name, n=2, seed=7)
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - model(x).numpy()).max() <= 1e-4


@pytest.mark.parametrize("name", ["lenet5", "googlenet_tv", "resnet18", "inception_v3"])
def test_torchscript_export_agrees_with_pytorch(tmp_path, name):
    model = trained_like(name)
    size = SIZES[name]
    path = tmp_path / f"{name}.torchscript.pt"
    result = export_torchscript(model, path, (model.in_chans, size, size), batch_size=2)
    assert result.max_abs_diff <= 1e-4 and result.batch_sizes_checked == (2,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        loaded = torch.jit.load(str(path))
    x = sample(name, n=2, seed=7)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() <= 1e-4


class FrozenByTracing(nn.Module):
    """Multiplies by the input's mean as a Python float: tracing freezes it, so exports differ."""

    def forward(self, x):
        return x.flatten(1)[:, :4] * float(x.mean())


@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_refuses_a_model_it_does_not_reproduce(tmp_path, export):
    path = tmp_path / "bad.out"
    with pytest.raises(ExportError, match="differs from the PyTorch model by up to"):
        export(FrozenByTracing(), path, (1, 4, 4), dynamic_batch=True)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


# ----- from a real checkpoint ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """lenet5_modern trained for one epoch on the digits (the engine's real checkpoint)."""
    from convolab.training import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("run") / "lenet"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=64, progress=False,
                        output=str(out))).fit()
    return out


def test_export_verb_writes_checked_onnx_with_metadata(run_dir, tmp_path, capsys):
    out = tmp_path / "digits.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "largest difference from PyTorch:" in printed
    diff = float(printed.split("largest difference from PyTorch:")[1].split()[0])
    assert diff <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert json.loads(meta["classes"]) == ckpt["classes"]
    assert json.loads(meta["mean"]) == pytest.approx(ckpt["mean"])
    assert json.loads(meta["std"]) == pytest.approx(ckpt["std"])
    assert json.loads(meta["image_size"]) == [28, 28] and json.loads(meta["in_chans"]) == 1


def test_export_verb_torchscript_default_output_and_metadata(run_dir, capsys):
    assert main(["export", str(run_dir / "last.pt"), "--format", "torchscript", "--batch-size", "4"]) == 0
    path = run_dir / "last.torchscript.pt"
    assert str(path) in capsys.readouterr().out
    module, meta = read_torchscript_meta(path)
    assert meta.model_name == "lenet5_modern" and meta.classes == tuple(str(i) for i in range(10))
    model, _ = model_from_checkpoint(run_dir / "last.pt")
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert (module(x) - model(x)).abs().max().item() <= 1e-4


def test_the_default_output_of_an_upper_case_checkpoint_name_drops_its_suffix(run_dir, tmp_path):
    import argparse

    from convolab.cli.export import default_output

    shutil.copy(run_dir / "last.pt", tmp_path / "Model.PT")
    args = argparse.Namespace(checkpoint=str(tmp_path / "Model.PT"), pretrained=False, weights=None)
    assert default_output(args, "onnx") == tmp_path / "Model.onnx"  # (was Model.PT.onnx)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("batch", [None, 2])  # dynamic, and a fixed batch that 3 images do not fill
def test_predict_exported_matches_the_checkpoint_on_png_digits(run_dir, tmp_path, batch, fmt):
    from PIL import Image

    from convolab.data import load_mnist5k
    from convolab.data.augment import BatchTransform

    test = load_mnist5k().test
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(paths[-1])
    model, meta = model_from_checkpoint(run_dir)
    if fmt == "onnx":
        out = tmp_path / "m.onnx"
        export_onnx(model, out, (1, 28, 28), batch_size=batch or 1, dynamic_batch=batch is None, meta=meta)
        got = predict_onnx(out, paths, top_k=3)
    else:
        out = tmp_path / "m.torchscript.pt"
        export_torchscript(model, out, (1, 28, 28), batch_size=batch or 1, dynamic_batch=batch is None, meta=meta,
                           fixed_batch=batch is not None)
        classifier = TorchScriptClassifier(out)
        assert classifier.fixed_batch == batch  # (read from the file's own refusal of batch 1)
        got = classifier.predict_files(paths, top_k=3)
    transform = BatchTransform(meta.in_chans, meta.image_size, meta.mean, meta.std)
    with torch.no_grad():
        probs = model(transform(test.images[:3])).softmax(1)
    assert len(got) == 3
    for row, p in zip(got, probs, strict=True):
        values, indices = p.topk(3)
        assert [name for name, _ in row] == [meta.classes[i] for i in indices]
        assert [prob for _, prob in row] == pytest.approx(values.tolist(), abs=1e-5)


def test_predict_verb_reads_a_torchscript_export_as_it_reads_the_checkpoint(run_dir, tmp_path, capsys):
    from PIL import Image

    from convolab.data import load_mnist5k

    images = load_mnist5k().test.images
    paths = [str(tmp_path / f"d{i}.png") for i in range(3)]
    for i, path in enumerate(paths):
        Image.fromarray(images[i, 0].numpy(), mode="L").save(path)
    out = tmp_path / "exported.torchscript.pt"  # (the name export gives it: under another, predict refuses to run it)
    assert main(["export", str(run_dir), "--format", "torchscript", "--batch-size", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run_dir), *paths, "--topk", "2"]) == 0
    from_checkpoint = capsys.readouterr().out
    assert main(["predict", str(out), *paths, "--topk", "2"]) == 0
    assert capsys.readouterr().out == from_checkpoint and len(from_checkpoint.splitlines()) == 3


# ----- the tolerance scales with the logits -------------------------------------------------------
@pytest.fixture(scope="module")
def realistic_resnet50():
    """torchvision's resnet50 with batch-norm statistics and affine parameters as training leaves them
    (running variance 0.5-1.5, mean +-0.1, weights ~N(1, 0.1)), converted: logits in the hundreds."""
    torchvision = pytest.importorskip("torchvision")
    from convolab.interop import from_torchvision

    torch.manual_seed(0)
    peer = torchvision.models.resnet50()
    with torch.no_grad():
        for bn in (m for m in peer.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_var.uniform_(0.5, 1.5)
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.weight.normal_(1, 0.1)
            bn.bias.normal_(0, 0.1)
    return from_torchvision(peer.eval()).eval()


def test_export_accepts_float32_round_off_of_large_logits(realistic_resnet50, tmp_path):
    from convolab.export import RTOL, TOLERANCE

    model, size = realistic_resnet50, (3, 112, 112)
    with pytest.raises(ExportError, match="differs from the PyTorch model by up to"):  # the old, absolute rule
        export_onnx(model, tmp_path / "abs.onnx", size, dynamic_batch=True, rtol=0.0)
    assert list(tmp_path.iterdir()) == []
    result = export_onnx(model, tmp_path / "r50.onnx", size, dynamic_batch=True)
    assert result.path.is_file() and result.folded_bn == count_batchnorm(model)
    assert TOLERANCE < result.max_abs_diff < 1e-3  # beyond the absolute part alone ...
    assert 0 < result.max_rel_diff < RTOL / 5  # ... but a few float32 epsilons of the largest logit
    with torch.no_grad():
        largest = model(torch.randn(1, *size, generator=torch.Generator().manual_seed(0))).abs().max().item()
    assert largest > 100


@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_still_refuses_one_logit_off_by_1e_2(realistic_resnet50, tmp_path, monkeypatch, export):
    import convolab.export.exporters as exporters

    def fold_then_break(model):
        folded = fold_batchnorm(model)
        last = [m for m in folded.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.bias[0] += 1e-2  # 3e-5 of logits in the hundreds: an error, not round-off
        return folded

    monkeypatch.setattr(exporters, "fold_batchnorm", fold_then_break)
    with pytest.raises(ExportError, match="differs from the PyTorch model by up to ") as refused:
        export(realistic_resnet50, tmp_path / "broken.out", (3, 112, 112), batch_size=1)
    # 0.01 give or take the round-off of a logit near 300 (0.00999 or 0.01 by the kernels' summation order)
    assert float(str(refused.value).split("by up to ")[1].split()[0]) == pytest.approx(1e-2, abs=1e-4)
    assert list(tmp_path.iterdir()) == []


# ----- where an export may go, the metadata of a bare model, the readers' refusals ------------------------
@pytest.fixture
def run_copy(run_dir, tmp_path):
    """A copy of the run, for a test that, failing, would overwrite its files."""
    return shutil.copytree(run_dir, tmp_path / "run")


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("name", ["best.pt", "config.json"])
@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_refuses_a_file_the_run_keeps(run_copy, export, name):
    model, meta = model_from_checkpoint(run_copy)
    before = contents(run_copy)
    with pytest.raises(ConfigError, match=f"`path` .*{name} is the {name} of the run in .*which the export would"):
        export(model, run_copy / name, (1, 28, 28), meta=meta)
    assert contents(run_copy) == before


def test_safetensors_export_refuses_a_run_folder_and_the_folder_it_reads(run_copy):
    before = contents(run_copy)
    with pytest.raises(ConfigError, match=r"holds a run \(config.json, last.pt, best.pt, metrics.csv\): the "
                                          "safetensors config.json would replace the run's"):
        export_safetensors(run_copy, run_copy)
    assert contents(run_copy) == before
    export_safetensors(run_copy, run_copy / "st")
    with pytest.raises(ConfigError, match="is the safetensors folder being exported"):
        export_safetensors(run_copy / "st", run_copy / "st")


def test_safetensors_export_to_an_unwritable_folder_is_one_line(run_dir, tmp_path, monkeypatch):
    import convolab.export.to_safetensors as module

    def denied(state, weights, folder):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(module, "save_safetensors", denied)
    with pytest.raises(ExportError, match=r"`folder` .*sf cannot be written \(Permission denied\); choose another"):
        export_safetensors(run_dir, tmp_path / "sf")


@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_under_a_file_says_it_is_a_file(tmp_path, export):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(ConfigError, match=f"lies under {tmp_path / 'afile'}, which is a file"):
        export(trained_like("lenet5"), tmp_path / "afile" / "m.out", (1, 28, 28))
    assert (tmp_path / "afile").read_text() == "keep me"


def test_export_without_meta_writes_the_models_own(tmp_path):
    from PIL import Image

    model = trained_like("lenet5")
    export_onnx(model, tmp_path / "plain.onnx", (1, 28, 28))
    export_torchscript(model, tmp_path / "plain.pt", (1, 28, 28))
    expected = ExportMeta(model.model_name, tuple(str(i) for i in range(10)), 1, (28, 28), model.data_config.mean,
                          model.data_config.std)
    assert read_torchscript_meta(tmp_path / "plain.pt")[1] == expected
    Image.new("L", (28, 28), 128).save(tmp_path / "img.png")
    top = predict_onnx(tmp_path / "plain.onnx", [tmp_path / "img.png"], top_k=10)[0]
    assert sorted(name for name, _ in top) == sorted(expected.classes)
    # A bare module has no normalization to tell: nothing is guessed, and the reader says what to pass.
    export_torchscript(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), tmp_path / "bare.pt", (1, 4, 4))
    with pytest.raises(ExportError, match=r"meta=ExportMeta\(...\)"):
        read_torchscript_meta(tmp_path / "bare.pt")


def test_predict_onnx_takes_one_path_and_refuses_top_k_below_1(tmp_path):
    from PIL import Image

    meta = ExportMeta("lenet5", tuple("abcdefghij"), 1, (28, 28), (0.5,), (0.5,))
    model = tmp_path / "m.onnx"
    export_onnx(trained_like("lenet5"), model, (1, 28, 28), dynamic_batch=True, meta=meta)
    image = tmp_path / "img.png"
    Image.new("L", (28, 28), 128).save(image)
    listed = predict_onnx(model, [image], top_k=2)
    assert len(listed) == 1 and len(listed[0]) == 2
    assert predict_onnx(model, str(image), top_k=2) == predict_onnx(model, image, top_k=2) == listed
    for k in (0, -1):
        with pytest.raises(ConfigError, match=f"^`top_k` must be a positive integer, got {k}"):
            predict_onnx(model, [image], top_k=k)
    assert len(predict_onnx(model, [image], top_k=np.int64(3))[0]) == 3  # (numpy's ints are taken)


def test_read_torchscript_meta_refuses_what_is_not_torchscript(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"an ONNX file, or anything else")
    torch.save({"model": {}}, tmp_path / "checkpoint.pt")
    for name in ("m.onnx", "checkpoint.pt"):
        with pytest.raises(ExportError, match=f"{name} is not a TorchScript export"):
            read_torchscript_meta(tmp_path / name)
    with pytest.raises(ExportError, match="missing.pt does not exist"):
        read_torchscript_meta(tmp_path / "missing.pt")


def test_out_suffix_chooses_the_format_when_format_is_not_given(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.pt"), "--batch-size", "2"]) == 0
    assert "(torchscript, lenet5_modern" in capsys.readouterr().out
    assert read_torchscript_meta(tmp_path / "m.pt")[1].model_name == "lenet5_modern"


def test_export_of_a_safetensors_folder_writes_beside_it(run_copy, capsys):
    assert main(["export", str(run_copy), "--format", "safetensors"]) == 0
    folder = run_copy / "best-safetensors"
    before = contents(folder)
    for given in (folder, folder / "model.safetensors"):
        assert main(["export", str(given), "--format", "torchscript", "--batch-size", "2"]) == 0
        assert f"wrote {run_copy / 'best-safetensors.torchscript.pt'} (" in capsys.readouterr().out
    assert contents(folder) == before and sorted(before) == ["config.json", "model.safetensors"]
    assert main(["export", str(folder), "--format", "safetensors"]) == 2  # a copy of it needs --out
    assert "is already a safetensors folder: give --out FOLDER" in capsys.readouterr().err
    assert contents(folder) == before and not (run_copy / "best-safetensors-safetensors").exists()


def test_onnx_export_keeps_the_crop_and_interpolation_of_published_weights(tmp_path):
    """A record as `convolab.pretrained` makes it for published weights (resnet50 V2: crop 224/232, not 0.875):
    its ONNX export predicts on an image file bigger than the input as the checkpoint itself does."""
    from PIL import Image

    from convolab.training.checkpoint import save_checkpoint
    from convolab.training.inference import load_trained_model, predict_targets

    model = copy.deepcopy(trained_like("lenet5"))  # (not the cached one)
    with torch.no_grad():  # logits of some size, as trained weights give, so that the crop shows in them
        model.get_classifier().weight.mul_(20)
        model.get_classifier().bias.mul_(20)
    config = model.data_config
    record = {"model_name": "lenet5", "model_options": {}, "num_classes": 10, "in_chans": 1,
              "classes": [f"c{i}" for i in range(10)], "image_size": [28, 28], "mean": list(config.mean),
              "std": list(config.std), "preprocess": "center-crop", "crop_pct": 224 / 232, "interpolation": "bicubic",
              "model": model.state_dict()}
    save_checkpoint(record, tmp_path / "w.pt")
    y, x = np.mgrid[0:70, 0:90]  # rings, which a crop of another share or resampling changes
    rings = 127.5 + 127.5 * np.cos(np.hypot(x - 45, y - 35) / 4)
    Image.fromarray(rings.astype(np.uint8), mode="L").save(tmp_path / "img.png")
    assert main(["export", str(tmp_path / "w.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    from_onnx = dict(predict_onnx(tmp_path / "m.onnx", [tmp_path / "img.png"], top_k=10)[0])
    from_pt = dict(predict_targets(load_trained_model(tmp_path / "w.pt"), [tmp_path / "img.png"], 10)[0][0])
    # log-probabilities: the logits less their log-sum-exp (0.04 apart with the default crop and resampling)
    assert from_onnx.keys() == from_pt.keys()
    assert max(abs(np.log(from_onnx[k]) - np.log(from_pt[k])) for k in from_pt) < 1e-4
    meta = model_from_checkpoint(tmp_path / "w.pt")[1]
    assert (meta.crop_pct, meta.interpolation) == (224 / 232, "bicubic")
    # exported without meta, the model's own pretrained_cfg says it; TorchScript's record keeps it too
    model.pretrained_cfg = {k: record[k] for k in ("classes", "preprocess", "crop_pct", "interpolation")}
    export_torchscript(model, tmp_path / "m.torchscript.pt", (1, 28, 28))
    assert read_torchscript_meta(tmp_path / "m.torchscript.pt")[1] == meta


def test_a_trained_models_own_export_carries_the_normalization_it_was_trained_with(tmp_path, capsys):
    # export_onnx(trainer.model) wrote the model's registered mean/std (MNIST's), not the run's: other classes
    trainer = Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(tmp_path / "run"),
                                  progress=False))
    trainer.fit()
    export_onnx(trainer.model.eval(), tmp_path / "a.onnx", (1, 28, 28))
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "b.onnx")]) == 0
    ours, cli = (ExportMeta.from_strings(ort.InferenceSession(str(tmp_path / f"{n}.onnx")).get_modelmeta()
                                         .custom_metadata_map) for n in "ab")
    assert (ours.mean, ours.std) == (cli.mean, cli.std) != ((0.1307,), (0.3081,))


def test_an_export_replaces_an_export_but_no_other_file(tmp_path):
    """(before: a user's notes, a photo or a checkpoint at `path` was overwritten without a word)"""
    model = trained_like("lenet5")
    notes = tmp_path / "keep.txt"
    notes.write_text("my notes")
    with pytest.raises(ConfigError, match=r"^`path` .*keep\.txt exists and is no export \(ONNX, TorchScript or "
                                          r"\.pt2\) that the export would replace: give a new file, or remove it"):
        export_torchscript(model, notes, (1, 28, 28))
    assert notes.read_text() == "my notes"
    again = tmp_path / "m.torchscript.pt"
    for _ in range(2):  # (an export exported again replaces itself)
        export_torchscript(model, again, (1, 28, 28))
    renamed = tmp_path / "m.pt"  # (a TorchScript file, whatever its name)
    again.rename(renamed)
    export_torchscript(model, renamed, (1, 28, 28))
