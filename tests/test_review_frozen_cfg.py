"""Review of the frozen backbone's batch norm and timm's pretrained_cfg: FrozenBatchNorm2d is a plain module (as
torchvision's and timm's), so PyTorch's batch-norm tools leave a frozen backbone alone (update_bn no longer resets
its statistics, SyncBatchNorm conversion no longer fails on it), it still folds into its convolution on export,
and its state dict keeps BatchNorm2d's keys both ways; every ConvNet has a `pretrained_cfg` (and `default_cfg`) of
its own data_config, so timm.data.resolve_model_data_config gives the model's input size, mean and std, not timm's
3x224x224 ImageNet defaults. Each test fails on the code before the fix."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchvision
from test_pretrained import seed_torchvision  # (offline_caches: a fixture of conftest.py)
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import update_bn

import convolab
from convolab.export import export_onnx, fold_batchnorm
from convolab.export.fold import count_batchnorm
from convolab.finetune import freeze_backbone
from convolab.layers.frozen_norm import FrozenBatchNorm2d
from convolab.training.checkpoint import weights_mismatch
from convolab.training.sync_bn import convert_sync_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def trained_and_frozen(name: str = "resnet20", size: int = 32) -> tuple[nn.Module, nn.Module]:
    """`name` with running statistics of its own (not 0 and 1), in eval mode, and a frozen copy of it."""
    torch.manual_seed(0)
    model = convolab.create_model(name).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, model.in_chans, size, size) * 2 + 1)
    model.eval()
    frozen = copy.deepcopy(model)
    freeze_backbone(frozen)
    return model, frozen


def frozen_layers(model: nn.Module) -> list[FrozenBatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]


def test_pytorchs_batchnorm_tools_leave_a_frozen_backbone_and_its_checkpoints_as_they_are():
    model, frozen = trained_and_frozen()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
    stored = {k: v.clone() for k, v in frozen.state_dict().items()}
    update_bn([torch.randn(8, 3, 32, 32)], frozen)  # (reset the frozen statistics to 0 and 1 before)
    frozen.apply(lambda m: m.reset_running_stats() if isinstance(m, _BatchNorm) else None)
    assert [k for k, v in frozen.state_dict().items() if not torch.equal(v, stored[k])] == []
    assert len(frozen_layers(frozen)) == 19 and not any(isinstance(m, _BatchNorm) for m in frozen.modules())
    with torch.no_grad():
        assert torch.equal(frozen.train()(x), reference)  # (in train mode too: the stored statistics)
    # The checkpoint format is BatchNorm2d's both ways, num_batches_tracked included (the old class's keys).
    plain = convolab.create_model("resnet20")
    assert list(frozen.state_dict()) == list(plain.state_dict()) and weights_mismatch(plain, stored) is None
    plain.load_state_dict(stored)
    refrozen = copy.deepcopy(plain)
    freeze_backbone(refrozen)
    refrozen.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), reference) and torch.equal(refrozen(x), reference)
    # torchvision's FrozenBatchNorm2d saves no batch count; its state dict loads, strictly.
    theirs = torchvision.ops.misc.FrozenBatchNorm2d(16)
    theirs.running_mean.fill_(0.25)
    mine = FrozenBatchNorm2d(16)
    mine.load_state_dict(theirs.state_dict())
    assert torch.equal(mine.running_mean, theirs.running_mean) and repr(mine) == "FrozenBatchNorm2d(16, eps=1e-05)"


def test_sync_batchnorm_conversion_leaves_a_frozen_backbone_frozen():
    _, frozen = trained_and_frozen()
    layers = frozen_layers(frozen)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = frozen(x)
    # (both raised "cannot assign 'torch.FloatTensor' as parameter 'weight'" before)
    for convert in (lambda m: convert_sync_batchnorm(m, torch.device("cpu")), nn.SyncBatchNorm.convert_sync_batchnorm):
        converted = convert(frozen)
        assert frozen_layers(converted) == layers and not any(isinstance(m, _BatchNorm) for m in converted.modules())
        with torch.no_grad():
            assert torch.equal(converted.train()(x), before)
    # The engine's order (--sync-bn, then --freeze-backbone) freezes the synchronized layers.
    synced = convert_sync_batchnorm(convolab.create_model("resnet20"), torch.device("cpu"))
    freeze_backbone(synced)
    assert len(frozen_layers(synced)) == 19 and not any(isinstance(m, _BatchNorm) for m in synced.modules())


def test_a_frozen_backbone_folds_into_its_convolutions_on_onnx_export(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _, frozen = trained_and_frozen()
    folded = fold_batchnorm(frozen)
    assert count_batchnorm(frozen) == 19 and count_batchnorm(folded) == 0  # (none folded before)
    result = export_onnx(frozen, tmp_path / "frozen.onnx", (3, 32, 32), dynamic_batch=True)
    assert result.folded_bn == 19 and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "frozen.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = frozen(x).numpy()
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - want).max() <= 1e-4
    assert frozen_layers(frozen)  # (the model itself left unchanged)


def resolved(model: nn.Module) -> tuple:
    timm = pytest.importorskip("timm")
    cfg = timm.data.resolve_model_data_config(model)
    return tuple(cfg["input_size"]), tuple(cfg["mean"]), tuple(cfg["std"])


def own(model: nn.Module) -> tuple:
    config = model.data_config
    return tuple(config.input_size), tuple(config.mean), tuple(config.std)


@pytest.mark.parametrize("name, size", [("lenet5", (1, 28, 28)), ("resnet20", (3, 32, 32)),
                                        ("inception_v3", (3, 299, 299)), ("lenet5_two_head", (1, 28, 28))])
def test_timm_resolves_every_models_own_input_size_mean_and_std(name, size):
    with torch.device("meta"):
        model = convolab.create_model(name)
    assert resolved(model) == own(model) and own(model)[0] == size  # (3x224x224, ImageNet's, before)
    cfg = model.pretrained_cfg
    assert model.default_cfg == cfg and cfg["num_classes"] == model.num_classes
    assert isinstance(model.get_submodule(cfg["first_conv"]), nn.Conv2d)
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    # An assigned cfg is kept (its keys win), and the data_config that training changes is followed.
    classes = [f"class {i}" for i in range(model.num_classes)]
    model.pretrained_cfg = {"classes": classes, "crop_pct": 0.9, "interpolation": "bilinear"}
    model.data_config = type(model.data_config)(model.data_config.input_size, (0.5,) * size[0], (0.25,) * size[0])
    timm = pytest.importorskip("timm")
    cfg = timm.data.resolve_model_data_config(model)
    assert (cfg["mean"], cfg["std"], cfg["crop_pct"], cfg["interpolation"]) == \
        ((0.5,) * size[0], (0.25,) * size[0], 0.9, "bilinear")
    assert model.pretrained_cfg["classes"] == classes and copy.deepcopy(model).default_cfg["crop_pct"] == 0.9
    model.pretrained_cfg = {"classes": ["a", "b"], "crop_pct": 0.9}  # (names of another head's outputs: left out)
    assert "classes" not in model.pretrained_cfg and model.pretrained_cfg["crop_pct"] == 0.9


def test_timm_resolves_a_pretrained_models_own_input_size(offline_caches, tmp_path):  # noqa: F811
    seed_torchvision(offline_caches, "inception_v3")
    published = convolab.create_model("inception_v3", pretrained=True)
    assert resolved(published) == ((3, 299, 299), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert published.pretrained_cfg["weights"].startswith("torchvision:")  # (the weights' own keys kept)
    torch.save(convolab.create_model("lenet5").state_dict(), tmp_path / "lenet5.pt")
    from_file = convolab.create_model("lenet5", pretrained=tmp_path / "lenet5.pt")
    assert resolved(from_file) == ((1, 28, 28), (0.1307,), (0.3081,))
    assert from_file.pretrained_cfg["weights"] == str(tmp_path / "lenet5.pt")
