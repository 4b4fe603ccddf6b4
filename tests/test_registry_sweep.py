"""Registry-wide sweeps (timm's habit): torch.fx tracing, TorchScript and ONNX export, and
`features_only`, each over every model of `list_models()`, so a model is covered the moment it
registers.

Each model runs at the smallest input it accepts (the ladder of test_models_registry.py), batch 1,
eval mode, with its batch-norm statistics measured on one random batch: at default initialisation
(running mean 0, variance 1) the eval-mode residual stream of a deep ResNet grows with every block
(resnet110's logits reach ~6e7, resnet1202's and preact_resnet1001's are NaN), so nothing could be
compared.

A model is never silently dropped from a sweep: it is skipped only through a SKIP_* dict and
deselected (to `pytest -m slow`) only through a SLOW_* dict, each entry with its one-line reason.
The models' weights are shared by all sweeps: pytest groups the tests by model (the `case`
fixture is module-scoped), so each is built once.
"""
from __future__ import annotations

import copy
import math
import warnings
from functools import cached_property

import numpy as np
import pytest
import torch
import torch.fx
from torch import nn

from convolab import create_model, list_models
from convolab.export import ProgramClassifier, export_onnx, export_program, export_torchscript, onnx_graph

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

MODELS = list_models()
SIDES = (16, 32, 48, 64, 96, 128, 160, 224, 299)  # as in test_models_registry.py
TOLERANCE = 1e-4  # largest difference from eager (the exporters' default), or 4x eager's own round-off

# ----- what is left out, and why ------------------------------------------------------------------
# Skipped: a model the check cannot apply to. None today: every registered model traces and exports.
SKIP_FX: dict[str, str] = {}
SKIP_TORCHSCRIPT: dict[str, str] = {}
SKIP_ONNX: dict[str, str] = {}
SKIP_FEATURES: dict[str, str] = {}

# Deselected by default (run them with `pytest -m slow`): each costs a second or more on 2 CPU cores
# and repeats the blocks of a model the default run covers. Times: measured on 2 shared cores.
_DEEPEST = {
    "resnet1202": "resnet20's basic blocks, 200 a stage instead of 3: ~4 s to build, calibrate and trace",
    "preact_resnet1001": "preact_resnet164's bottlenecks, 111 a stage instead of 18: ~4 s to build, calibrate, trace",
}
# The deeper siblings of a model traced by default, of the same blocks: ~1-2 s each for each of fx and features_only
_SIBLINGS = {name: f"{sibling}'s blocks, more of them: ~1-2 s to trace" for name, sibling in (
    ("resnet101", "resnet50"), ("resnet152", "resnet50"), ("resnet101_v1", "resnet50_v1"),
    ("resnet152_v1", "resnet50_v1"), ("densenet161", "densenet121"), ("densenet169", "densenet121"),
    ("densenet201", "densenet121"), ("densenet100_k24", "densenet100_k12"),
    ("densenet_bc190_k40", "densenet_bc100_k12"), ("densenet_bc250_k24", "densenet_bc100_k12"),
    ("inception_resnet_v2", "inception_resnet_v1 and inception_v3"))}
SLOW_FX: dict[str, str] = {**_DEEPEST, **_SIBLINGS}
SLOW_FEATURES: dict[str, str] = {
    "resnet1202": "create_feature_extractor traces the 1202-layer graph twice (train, eval): ~12 s",
    "preact_resnet1001": "create_feature_extractor traces the 1001-layer graph twice (train, eval): ~9 s",
    **_SIBLINGS,
}
# Both exporters trace the whole graph, fold its batch norms and check the written file, so their
# time grows with the layer count; the same models are slow for both.
SLOW_ONNX: dict[str, str] = {
    "resnet1202": "1202 layers: TorchScript ~24 s, ONNX ~12 s; resnet20's blocks, exported by default",
    "preact_resnet1001": "1001 layers: TorchScript ~22 s, ONNX ~11 s; preact_resnet50's bottlenecks are exported",
    "resnet32": "resnet20's basic blocks, 5 a stage instead of 3: ~1.0 s for the two exports",
    "resnet44": "resnet20's basic blocks, 7 a stage instead of 3: ~0.8 s for the two exports",
    "resnet56": "resnet20's basic blocks, 9 a stage instead of 3: ~1.0 s for the two exports",
    "resnet110": "resnet20's basic blocks, 18 a stage instead of 3: ~2.6 s for the two exports",
    "resnet34": "resnet18's basic blocks, 16 instead of 8: ~1.8 s for the two exports",
    "resnet101": "resnet50's bottlenecks, 33 instead of 16: ~6.6 s for the two exports",
    "resnet152": "resnet50's bottlenecks, 50 instead of 16: ~7.4 s for the two exports",
    "resnet101_v1": "resnet101 with the stride on the bottlenecks' 1x1 conv: ~7.5 s for the two exports",
    "resnet152_v1": "resnet152 with the stride on the bottlenecks' 1x1 conv: ~9.8 s for the two exports",
    "resnet50_v1": "resnet50's bottlenecks with the stride on the 1x1 conv (a constructor option): ~2.6 s",
    "plain18": "resnet18 without the shortcuts (a constructor option; plain20 exports it): ~1.9 s",
    "plain34": "plain18's shortcut-free blocks, 16 instead of 8: ~3.8 s for the two exports",
    "plain32": "plain20's shortcut-free blocks, 5 a stage instead of 3: ~1.0 s for the two exports",
    "plain44": "plain20's shortcut-free blocks, 7 a stage instead of 3: ~1.1 s for the two exports",
    "plain56": "plain20's shortcut-free blocks, 9 a stage instead of 3: ~1.5 s for the two exports",
    "plain110": "plain20's shortcut-free blocks, 18 a stage instead of 3: ~2.8 s for the two exports",
    "preact_resnet164": "preact_resnet50's bottlenecks (54 instead of 16) after a CIFAR stem: ~2.8 s",
    "densenet161": "densenet121's dense layers, 78 instead of 58 at k=48: ~7.7 s for the two exports",
    "densenet169": "densenet121's dense layers, 82 instead of 58: ~3.9 s for the two exports",
    "densenet201": "densenet121's dense layers, 98 instead of 58: ~5.8 s for the two exports",
    "densenet100_k12": "densenet40_k12's basic dense layers, 96 instead of 36: ~2.6 s for the two exports",
    "densenet100_k24": "densenet40_k12's basic dense layers, 96 instead of 36 at k=24: ~6.6 s for the two exports",
    "densenet_bc190_k40": "densenet_bc100_k12's bottleneck layers, 93 instead of 48 at k=40: ~9.6 s",
    "densenet_bc250_k24": "densenet_bc100_k12's bottleneck layers, 123 instead of 48 at k=24: ~11 s",
    "inception_resnet_v2": "inception_resnet_v1's block classes x 2 and inception_v3's Inception-A: ~13 s",
    # Exported by test_export.py's hand-picked tests as well (at 64-75 px, batches 1 to 3).
    "inception_v3": "exported in test_export.py at 75 px with a dynamic batch: ~4.4 s more here",
    "googlenet_tv": "exported in test_export.py at 64 px with a dynamic batch: ~2.1 s more here",
}
SLOW_TORCHSCRIPT: dict[str, str] = dict(SLOW_ONNX)

# features_only: a map's side is the input side / the stage's reduction (rounded up), except in nets
# with unpadded (valid) convolutions or pools, where it is smaller.
VALID_PADDING: dict[str, str] = {
    "lenet5": "its second 5x5 conv is unpadded: 28 -> 14 -> 10 -> 5 at reduction 4, not 7",
    "lenet5_modern": "lenet5 with ReLU and max pool: the same unpadded second conv, 5 at reduction 4",
    "lenet5_two_head": "a lenet5_modern backbone: 5 at reduction 4",
    "multitask": "its default backbone is lenet5_modern: 5 at reduction 4",
    "lenet5_bn": "both 5x5 convs unpadded (d2l's layout): 28 -> 24 -> 12 -> 8 -> 4",
    "inception_mnist": "both 5x5 convs unpadded: 28 -> 24 -> 12 -> 8 -> 4",
    "resnet_mnist": "both 5x5 convs unpadded: 28 -> 24 -> 12 -> 8 -> 4",
    "nin": "an unpadded 11x11/4 stem conv and 3x3/2 pools: 96 -> 22 -> 10 at reduction 8",
    "inception_v3": "an unpadded 3x3/2 then 3x3 stem: 96 -> 47 -> 45 at reduction 2",
    "inception_v4": "an unpadded 3x3/2 then 3x3 stem: 96 -> 47 -> 45 at reduction 2",
    "inception_resnet_v1": "an unpadded 3x3/2 then 3x3 stem: 96 -> 47 -> 45 at reduction 2",
    "inception_resnet_v2": "an unpadded 3x3/2 then 3x3 stem: 96 -> 47 -> 45 at reduction 2",
}


def _sweep(skip: dict[str, str], slow: dict[str, str]) -> list:
    params = []
    for name in MODELS:
        marks = []
        if name in skip:
            marks.append(pytest.mark.skip(reason=skip[name]))
        if name in slow:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def test_every_left_out_model_is_registered_and_has_a_reason():
    for table in (SKIP_FX, SKIP_TORCHSCRIPT, SKIP_ONNX, SKIP_FEATURES, SLOW_FX, SLOW_TORCHSCRIPT, SLOW_ONNX,
                  SLOW_FEATURES, VALID_PADDING):
        for name, reason in table.items():
            assert name in MODELS, f"{name!r} is not a registered model"
            assert isinstance(reason, str) and reason.strip(), f"{name!r} is left out without a reason"


# ----- one model at a time, shared by the sweeps --------------------------------------------------


class Case:
    """One registered model: `create_model(name)` with seed 0 in eval mode, the smallest input side it
    runs at, and batch-norm statistics measured on a random batch of 8 at that side."""

    def __init__(self, name: str):
        torch.manual_seed(0)
        self.name, self.net = name, create_model(name).eval()
        self.side = self._smallest_side()
        self.input_size = (self.net.in_chans, self.side, self.side)
        bns = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.momentum = None  # cumulative average: the one batch sets the statistics to its own
        if bns:
            with torch.no_grad():
                self.net.train()(torch.randn(8, *self.input_size))
            self.net.eval()

    def _smallest_side(self) -> int:
        """The smallest side on test_models_registry.py's ladder at which the model runs, not below a
        seventh of its default, else its default (tried on the model itself: cheaper than on meta)."""
        channels, default, _ = self.net.data_config.input_size
        for side in [s for s in SIDES if default // 7 <= s < default]:
            try:
                with torch.no_grad():
                    self.net(torch.zeros(1, channels, side, side))
            except RuntimeError:
                continue
            return side
        return default

    def sample(self, seed: int = 7) -> torch.Tensor:
        return torch.randn(1, *self.input_size, generator=torch.Generator().manual_seed(seed))

    @cached_property
    def tolerance(self) -> float:
        """TOLERANCE, or 4 times the model's own float32 round-off where that is larger.

        With random weights and statistics from 8 samples at these tiny inputs, some channels have a
        near-zero variance, and the float32 network differs from its float64 twin by up to ~1e-3 of
        its logits (resnet152, inception_v4); an export, which folds batch norms and reorders sums,
        cannot be closer to eager than that. The exports measured here stay within 2.5 times it.
        Checked on the exporters' own input (seed 0) and on ours.
        """
        twin = copy.deepcopy(self.net).double()
        error = 0.0
        with torch.no_grad():
            for seed in (0, 7):
                x = self.sample(seed)
                logits = self.net(x)
                assert torch.isfinite(logits).all(), f"{self.name}'s eval-mode logits are not finite"
                error = max(error, (logits.double() - twin(x.double())).abs().max().item())
        return max(TOLERANCE, 4 * error)


@pytest.fixture(scope="module")
def case(request) -> Case:
    return Case(request.param)


class _AllOutputs(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_outputs(x)


# ----- torch.fx ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _sweep(SKIP_FX, SLOW_FX), indirect=True)
def test_fx_traced_graph_reproduces_eager_exactly_and_calls_every_conv(case):
    net = case.net
    graph_module = torch.fx.symbolic_trace(net)
    x = case.sample()
    with torch.no_grad():
        assert torch.equal(graph_module(x), net(x))
    called = {node.target for node in graph_module.graph.nodes if node.op == "call_module"}
    convs = {name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert convs <= called, f"convolutions the traced graph never calls: {sorted(convs - called)[:5]}"
    if net.aux_names:  # the extra heads too, as export's batch-norm folding traces them
        outputs = torch.fx.symbolic_trace(_AllOutputs(net))
        with torch.no_grad():
            got, expected = outputs(x), net.forward_outputs(x)
        assert set(got) == set(expected) == {"main", *net.aux_names}
        assert all(torch.equal(got[k], expected[k]) for k in expected)


# ----- TorchScript -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _sweep(SKIP_TORCHSCRIPT, SLOW_TORCHSCRIPT), indirect=True)
def test_torchscript_export_reproduces_eager(tmp_path, case):
    net, tol = case.net, case.tolerance
    path = tmp_path / "model.torchscript.pt"
    result = export_torchscript(net, path, case.input_size, batch_size=1, tolerance=tol)
    assert result.max_abs_diff <= tol and result.batch_sizes_checked == (1,) and path.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        loaded = torch.jit.load(str(path))
    x = case.sample()
    with torch.no_grad():
        got, expected = loaded(x), net(x)
    assert got.shape == expected.shape == (1, net.num_classes)
    assert (got - expected).abs().max().item() <= tol


# ----- ONNX --------------------------------------------------------------------------------------
def _onnx_runtime_and_eager(ort, path, case) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX file's outputs in ONNX Runtime and the eager model's, for the case's sample."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = case.sample()
    with torch.no_grad():
        return session.run(None, {"input": x.numpy()})[0], case.net(x).numpy()


@pytest.mark.parametrize("case", _sweep(SKIP_ONNX, SLOW_ONNX), indirect=True)
def test_onnx_export_runs_in_onnx_runtime_and_reproduces_eager(tmp_path, case):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net, tol = case.net, case.tolerance
    path = tmp_path / "model.onnx"
    result = export_onnx(net, path, case.input_size, batch_size=1, tolerance=tol)
    assert result.max_abs_diff <= tol and result.batch_sizes_checked == (1,)
    got, expected = _onnx_runtime_and_eager(ort, path, case)
    assert got.shape == expected.shape == (1, net.num_classes)
    assert np.abs(got - expected).max() <= tol


# The same through torch's torch.export-based exporter (`--onnx-exporter dynamo`): 3-15 s a model on 2 cores,
# so every model is `slow` (tests/test_onnx_dynamo.py checks lenet5_modern and resnet20 by default).
@pytest.mark.slow
@pytest.mark.skipif(onnx_graph.dynamo_unavailable() != "", reason=onnx_graph.dynamo_unavailable() or "available")
@pytest.mark.parametrize("case", _sweep(SKIP_ONNX, {}), indirect=True)
def test_dynamo_onnx_export_runs_in_onnx_runtime_and_reproduces_eager(tmp_path, case):
    ort = pytest.importorskip("onnxruntime")
    net, tol = case.net, case.tolerance
    path = tmp_path / "model.onnx"
    result = export_onnx(net, path, case.input_size, dynamic_batch=True, tolerance=tol, exporter="dynamo")
    assert result.max_abs_diff <= tol and result.batch_sizes_checked == (1, 3)
    got, expected = _onnx_runtime_and_eager(ort, path, case)
    assert got.shape == expected.shape == (1, net.num_classes)
    assert np.abs(got - expected).max() <= tol


# And as a torch.export program (`--format pt2`), also `slow`: tests/test_export_program.py checks lenet5_modern and
# resnet20 by default.
@pytest.mark.slow
@pytest.mark.parametrize("case", _sweep(SKIP_ONNX, {}), indirect=True)
def test_pt2_export_reproduces_eager(tmp_path, case):
    net, tol = case.net, case.tolerance
    path = tmp_path / "model.pt2"
    result = export_program(net, path, case.input_size, dynamic_batch=True, tolerance=tol)
    assert result.max_abs_diff <= tol and result.batch_sizes_checked == (1, 3)
    program = ProgramClassifier(path)
    x = case.sample()
    with torch.no_grad():
        got, expected = program._forward(x), net(x)
    assert got.shape == expected.shape == (1, net.num_classes)
    assert (got - expected).abs().max().item() <= tol


# ----- features_only -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", _sweep(SKIP_FEATURES, SLOW_FEATURES), indirect=True)
def test_features_only_gives_the_feature_info_stages_as_the_source_model_computes_them(case):
    net = case.net
    with torch.device("meta"):  # no weights drawn: the source model's own (calibrated) ones load into it
        features = create_model(case.name, features_only=True)
    # It keeps the source's parameter and buffer names (a classifier checkpoint loads into it).
    missing, _ = features.load_state_dict(net.state_dict(), strict=False, assign=True)
    assert missing == [], f"feature-net entries the source model does not name: {missing[:5]}"
    left = [n for n, t in [*features.named_parameters(), *features.named_buffers()] if t.is_meta]
    assert not left, f"feature-net entries outside the state dict: {left[:5]}"
    features.eval()
    assert [(f.module, f.num_chs, f.reduction) for f in features.feature_info] == \
        [(f.module, f.num_chs, f.reduction) for f in net.feature_info]
    assert features.in_chans == net.in_chans and features.data_config == net.data_config

    modules = dict(net.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [modules[f.module].register_forward_hook(lambda m, i, o, key=f.module: seen.update({key: o.clone()}))
             for f in net.feature_info]
    x = case.sample()
    try:
        with torch.no_grad():
            net(x)
            maps = features(x)
    finally:
        for h in hooks:
            h.remove()
    assert isinstance(maps, list) and len(maps) == len(net.feature_info) >= 2
    for fmap, info in zip(maps, features.feature_info, strict=True):
        assert fmap.dim() == 4 and fmap.shape[:2] == (1, info.num_chs), (info, fmap.shape)
        assert torch.equal(fmap, seen[info.module]), f"{info.module}: not the source model's output"
        expected_side = math.ceil(case.side / info.reduction)
        if case.name in VALID_PADDING:
            assert 1 <= fmap.shape[-1] <= expected_side, (info, fmap.shape)
        else:
            assert fmap.shape[-2:] == (expected_side, expected_side), (info, fmap.shape, case.side)
