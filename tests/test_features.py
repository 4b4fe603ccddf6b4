"""Feature extraction: features_only models (channels and strides as feature_info says, source
parameter names) and `convolab features` writing pooled penultimate features to .npz."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import convolab.cli.features as features_cli
from convolab import create_model
from convolab.cli import main
from convolab.errors import ConfigError
from convolab.finetune import load_matching
from convolab.training import TrainConfig, Trainer


# Every registered model's features_only net (maps equal to the source's module outputs, sides from
# feature_info's reductions) is checked by tests/test_registry_sweep.py; these three at 28-64 px, batch 2.
@pytest.mark.parametrize("name, size, check_stride", [
    ("lenet5", 28, False),  # LeNet's unpadded second conv: 10x10 -> 5x5, not 28/4
    ("resnet18", 64, True),
    ("googlenet_tv", 64, True),
])
def test_features_only_returns_one_map_per_stage_with_the_channels_of_feature_info(name, size, check_stride):
    torch.manual_seed(0)
    model = create_model(name, features_only=True).eval()
    source_info = create_model(name, num_classes=10).feature_info if name == "lenet5" else None
    with torch.no_grad():
        maps = model(torch.randn(2, model.in_chans, size, size))
    assert isinstance(maps, list) and len(maps) == len(model.feature_info) >= 2
    for fmap, info in zip(maps, model.feature_info, strict=True):
        assert fmap.shape[:2] == (2, info.num_chs), (info, fmap.shape)
        if check_stride:
            assert fmap.shape[-1] == size // info.reduction, (info, fmap.shape)
    if source_info is not None:
        assert [f.module for f in model.feature_info] == [f.module for f in source_info]


def test_out_indices_choose_stages_and_keep_the_source_parameter_names():
    source = create_model("resnet18", num_classes=1000)
    # (resnet18's stages begin with the stem's, `relu` at stride 2, as timm's: layer2 is stage 2, not 1)
    model = create_model("resnet18", features_only=True, out_indices=(2, -1))
    assert [(f.module, f.num_chs, f.reduction) for f in model.feature_info] == [("layer2", 128, 8), ("layer4", 512, 32)]
    maps = model.eval()(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [128, 512]
    report = load_matching(model, source.state_dict())  # a classifier checkpoint loads by name
    assert report.missing == [] and report.mismatched == []
    assert report.unexpected == ["head.fc.weight", "head.fc.bias"]
    with pytest.raises(ConfigError, match="out_indices .* resnet18 has 5 feature stages"):  # (with the stem's)
        create_model("resnet18", features_only=True, out_indices=(5,))
    # (out_indices alone built the classifier, logits where maps were asked for; "no" was taken as True)
    with pytest.raises(ConfigError, match=r"out_indices \(1, 2\) chooses the stages of a features_only model"):
        create_model("resnet18", out_indices=(1, 2))
    with pytest.raises(ConfigError, match="features_only must be True or False, got 'no'"):
        create_model("resnet18", features_only="no")


def test_features_cli_writes_pooled_penultimate_features_with_labels_and_classes(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(run), progress=False)).fit()
    out = tmp_path / "features.npz"
    assert main(["features", str(run), "--data", "digits", "--out", str(out)]) == 0
    assert "1438 train and 359 test feature vectors of 84 values" in capsys.readouterr().out
    with np.load(out) as f:
        arrays = {k: f[k] for k in f.files}
    assert arrays["train_features"].shape == (1438, 84) and arrays["test_features"].shape == (359, 84)
    assert arrays["train_labels"].shape == (1438,) and set(arrays["test_labels"].tolist()) == set(range(10))
    assert list(arrays["classes"]) == [str(i) for i in range(10)]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # written atomically
    # The features are what a linear head reads: the checkpoint's own head reproduces its predictions.
    ckpt = torch.load(run / "last.pt", weights_only=True)
    w, b = ckpt["model"]["head.fc.weight"].numpy(), ckpt["model"]["head.fc.bias"].numpy()
    acc = ((arrays["test_features"] @ w.T + b).argmax(1) == arrays["test_labels"]).mean()
    assert acc > 0.5


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("features") / "run"
    Trainer(TrainConfig(model="lenet5_modern", data="digits", epochs=1, output=str(run), progress=False)).fit()
    return run


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="no /sys (not Linux)")
def test_features_out_in_sys_is_refused_before_the_features_are_computed(digits_run, capsys, monkeypatch):
    monkeypatch.setattr(features_cli, "extract_features", lambda *a, **k: pytest.fail("the features were computed"))
    assert main(["features", str(digits_run), "--out", "/sys/f.npz"]) == 2
    # root passes os.access: the write itself is tried ("cannot be written"); others get "is not writable"
    assert "convolab features: error: --out /sys/f.npz " in one_line(capsys)
    assert not os.path.exists("/sys/f.npz")


def test_features_a_write_that_fails_at_the_end_is_one_line(digits_run, tmp_path, capsys, monkeypatch):
    def refused(path, arrays):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(features_cli, "save_features", refused)
    out = tmp_path / "f.npz"
    assert main(["features", str(digits_run), "--out", str(out)]) == 2
    assert f"convolab features: error: --out {out} cannot be written (Permission denied); choose another file" \
        in one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_features_of_an_edited_checkpoint_name_the_checkpoint(digits_run, tmp_path, capsys):
    edited = tmp_path / "edited.pt"
    torch.save({**torch.load(digits_run / "best.pt", weights_only=True), "image_size": [32, 32]}, edited)
    assert main(["features", str(edited), "--data", "digits", "--out", str(tmp_path / "f.npz")]) == 2
    assert f"checkpoint {edited}: its 'image_size' [32, 32] does not fit lenet5_modern" in one_line(capsys)
    torch.save({**torch.load(digits_run / "best.pt", weights_only=True), "image_size": 28}, edited)
    assert main(["features", str(edited), "--out", str(tmp_path / "f.npz")]) == 2
    assert f"{edited}: its 'image_size' is 28, not [height, width]" in one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.pt"]
