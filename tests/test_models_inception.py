"""The GoogLeNet / Inception family: exact counts against docs/REFERENCE.md, stage shapes, aux heads."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from convolab import create_model
from convolab._registry import get_entry
from convolab.analysis import count_macs, count_params
from convolab.layers import conv_block
from convolab.models._base import torchvision_input
from convolab.models.bn_inception import BNInception, BNInceptionSpec, reduction_pool
from convolab.models.googlenet import InceptionSpec, InceptionV1
from convolab.models.inception_resnet import InceptionResnetA, InceptionResnetASpec


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


# (model, options, params, MACs, input side); every figure is docs/REFERENCE.md's or derived below.
COUNTS = [
    # 2c / 1c: paper GoogLeNet, true 5x5, biases, no BN; aux heads 3,188,840 + 3,190,888 (2c).
    ("googlenet", {}, 6_998_552, 1_582_671_872, 224),
    ("googlenet", {"aux_logits": True}, 6_998_552 + 3_188_840 + 3_190_888, 1_582_671_872, 224),
    # 1a: torchvision googlenet; eval MACs do not run the aux heads.
    ("googlenet_tv", {}, 6_624_904, 1_498_376_192, 224),
    ("googlenet_tv", {"aux_logits": True}, 13_004_888, 1_498_376_192, 224),
    # 1e: d2l GoogLeNet (1 channel, 10 classes) at 96.
    ("googlenet_small", {"batch_norm": False}, 5_977_530, 276_066_304, 96),
    # 1a / 1b: torchvision and timm Inception-v3.
    ("inception_v3", {}, 23_834_568, 5_713_216_096, 299),
    ("inception_v3", {"aux_logits": True}, 27_161_264, 5_713_216_096, 299),
    # 1b: timm.
    ("inception_v4", {}, 42_679_816, 12_253_974_624, 299),
    ("inception_resnet_v2", {}, 55_843_464, 13_155_794_016, 299),
    # 1b: facenet-pytorch backbone 22,564,096 + Linear(1792, 1000) = 24,357,096. MACs: its
    # 6,307,723,360 at 299 less its Linear(1792, 512, no bias) 917,504, plus 1792 x 1000.
    ("inception_resnet_v1", {}, 24_357_096, 6_307_723_360 - 1792 * 512 + 1792 * 1000, 299),
    # 1b: Cadene's BNInception 11,295,240 has a bias on each of its 10,016 BN-preceded conv
    # channels (20,032 BN affine = 2 x 10,016); ours has none. Same convs, so the same MACs.
    ("bn_inception", {}, 11_295_240 - 10_016, 2_032_600_064, 224),
    # The paper's separable stem: 7x7x3x64 = 9,408 weights become 7x7x3x8 = 1,176 depthwise +
    # 24x64 = 1,536 pointwise; MACs at 112x112: 118,013,952 become 112*112*(24*49 + 64*24).
    ("bn_inception", {"separable_stem": True}, 11_285_224 - 9_408 + 1_176 + 1_536,
     2_032_600_064 - 118_013_952 + 112 * 112 * (24 * 49 + 64 * 24), 224),
]


@pytest.mark.parametrize("name,options,params,macs,size", COUNTS,
                         ids=[f"{c[0]}{'-' + '-'.join(c[1]) if c[1] else ''}" for c in COUNTS])
def test_params_and_macs_equal_the_reference(name, options, params, macs, size):
    model = meta_model(name, **options)
    assert count_params(model) == params
    assert count_macs(model, (model.in_chans, size, size)) == macs


def test_small_inception_is_zhang_et_al_table_1_plus_bn_scale():
    # Zhang et al. 2017, Table 1: 1,649,402 parameters for their CIFAR-10 Inception. That is one
    # per-channel term per conv output (TF-slim's batch norm has a beta but no gamma by default);
    # ours has BN's gamma and beta, so 1,712 more.
    model = meta_model("inception_small")
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn_channels == 1_712
    assert count_params(model) == 1_649_402 + bn_channels


def test_aux_heads_have_the_reference_sizes():
    paper, tv = meta_model("googlenet", aux_logits=True), meta_model("googlenet_tv", aux_logits=True)
    assert (count_params(paper.aux1), count_params(paper.aux2)) == (3_188_840, 3_190_888)
    assert (count_params(tv.aux1), count_params(tv.aux2)) == (3_188_968, 3_191_016)
    assert count_params(meta_model("inception_v3", aux_logits=True).aux) == 3_326_696


def stage_shapes(model: nn.Module, size: int) -> dict[str, tuple[int, ...]]:
    """Output shape (C, H, W) of every feature_info module, from one meta-device forward."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [modules[f.module].register_forward_hook(
        lambda _m, _i, out, name=f.module: shapes.__setitem__(name, tuple(out.shape[1:])))
        for f in model.feature_info]
    model.eval()(torch.zeros(1, model.in_chans, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return shapes


# REFERENCE 2a (stage outputs); BN-Inception's 4c/4d are 608 wide (see bn_inception's docstring).
STAGES = [
    ("googlenet_tv", 224, {"conv1": (64, 112, 112), "conv3": (192, 56, 56), "inception3b": (480, 28, 28),
                           "inception4e": (832, 14, 14), "inception5b": (1024, 7, 7)}),
    ("googlenet", 224, {"conv1": (64, 112, 112), "conv3": (192, 56, 56), "inception3b": (480, 28, 28),
                        "inception4e": (832, 14, 14), "inception5b": (1024, 7, 7)}),
    ("inception_v3", 299, {"Conv2d_2b_3x3": (64, 147, 147), "Conv2d_4a_3x3": (192, 71, 71),
                           "Mixed_5d": (288, 35, 35), "Mixed_6e": (768, 17, 17), "Mixed_7c": (2048, 8, 8)}),
    ("inception_v4", 299, {"features.2": (64, 147, 147), "features.3": (160, 73, 73),
                           "features.9": (384, 35, 35), "features.17": (1024, 17, 17),
                           "features.21": (1536, 8, 8)}),
    ("inception_resnet_v2", 299, {"conv2d_2b": (64, 147, 147), "conv2d_4a": (192, 71, 71),
                                  "repeat": (320, 35, 35), "repeat_1": (1088, 17, 17),
                                  "conv2d_7b": (1536, 8, 8)}),
    ("inception_resnet_v1", 299, {"conv2d_2b": (64, 147, 147), "conv2d_4a": (192, 71, 71),
                                  "repeat": (256, 35, 35), "repeat_1": (896, 17, 17),
                                  "block8": (1792, 8, 8)}),
    ("bn_inception", 224, {"conv1": (64, 112, 112), "conv2": (192, 56, 56), "inception3b": (320, 28, 28),
                           "inception4d": (608, 14, 14), "inception5b": (1024, 7, 7)}),
    ("inception_small", 28, {"stem": (96, 28, 28), "stage1": (80, 28, 28), "stage2": (144, 14, 14),
                             "stage3": (336, 7, 7)}),
]


@pytest.mark.parametrize("name,size,expected", STAGES, ids=[s[0] for s in STAGES])
def test_feature_info_stages_have_the_reference_shapes(name, size, expected):
    model = meta_model(name)
    shapes = stage_shapes(model, size)
    assert shapes == expected
    for info in model.feature_info:
        assert info.num_chs == shapes[info.module][0]
        assert info.reduction == 2 ** round(math.log2(size / shapes[info.module][1]))


def test_googlenet_small_with_bn_trades_each_conv_bias_for_a_bn_scale_and_shift():
    plain, with_bn = meta_model("googlenet_small", batch_norm=False), meta_model("googlenet_small")
    conv_channels = sum(m.out_channels for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert count_params(with_bn) == 5_977_530 - conv_channels + 2 * conv_channels
    assert count_macs(with_bn, (1, 96, 96)) == 276_066_304


@pytest.mark.parametrize("size,expected", [
    (96, [(64, 24, 24), (192, 12, 12), (480, 6, 6), (832, 3, 3), (1024, 3, 3)]),
    (28, [(64, 7, 7), (192, 4, 4), (480, 2, 2), (832, 1, 1), (1024, 1, 1)]),
])
def test_googlenet_small_stages_follow_d2l(size, expected):
    # REFERENCE 2b: d2l's b1..b5 end at maxpool1..4 and inception5b.
    model = meta_model("googlenet_small").eval()  # BN cannot train on a 1x1 map of batch 1
    shapes = []
    names = ["maxpool1", "maxpool2", "maxpool3", "maxpool4", "inception5b"]
    hooks = [getattr(model, n).register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:])))
             for n in names]
    model(torch.zeros(1, 1, size, size, device="meta"))
    for h in hooks:
        h.remove()
    assert shapes == expected


def test_googlenet_feature_info_names_inception4e_for_fine_tuning():
    model = meta_model("googlenet")
    assert any(f.module == "inception4e" and f.num_chs == 832 and f.reduction == 16
               for f in model.feature_info)
    assert "inception4e" in dict(model.named_modules())


def test_inception_v1_module_keeps_hw_and_outputs_the_table_sum():
    spec = InceptionSpec(64, 96, 128, 16, 32, 32)
    for kernel in (5, 3):
        module = InceptionV1(192, spec, conv_block(norm=None), kernel_5x5=kernel)
        assert module(torch.zeros(1, 192, 28, 28)).shape == (1, 256, 28, 28)
    weights = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    biases = 64 + 96 + 128 + 16 + 32 + 32
    assert count_params(InceptionV1(192, spec, conv_block(norm=None))) == weights + biases
    assert weights == 163_328  # REFERENCE 2c, inception (3a), exact weights


def test_bn_inception_stride_two_module_passes_the_pool_through():
    spec = BNInceptionSpec(0, 128, 160, 64, 96, "max", 0, stride=2)
    module = BNInception(320, spec, conv_block())
    assert module(torch.zeros(1, 320, 28, 28)).shape == (1, 160 + 96 + 320, 14, 14)
    with pytest.raises(ValueError, match="stride-2"):
        BNInception(320, spec._replace(ch1x1=64), conv_block())


def test_bn_inception_stride_two_module_takes_odd_and_even_grids():
    # Its stride-2 3x3s give ceil(n/2); Caffe's ceil_mode pool gave ceil((n-1)/2), one fewer at odd n,
    # so the concat failed (bn_inception ran only at 32k-1 ... 32k+6 px).
    module = BNInception(32, BNInceptionSpec(0, 8, 8, 8, 8, "max", 0, stride=2), conv_block()).eval()
    for n in range(1, 34):
        assert module(torch.zeros(1, 32, n, n)).shape == (1, 8 + 8 + 32, -(-n // 2), -(-n // 2))


@pytest.mark.parametrize("n", [2, 14, 28, 56])
def test_bn_inception_reduction_pool_is_caffes_ceil_mode_pool_at_even_sizes(n):
    # every size that ran before (224 included) meets only even grids at 3c and 4e: same outputs
    x = torch.randn(2, 5, n, n + 2)
    pad, pool = reduction_pool()
    assert torch.equal(pool(pad(x)), nn.MaxPool2d(3, stride=2, ceil_mode=True)(x))


def test_bn_inception_runs_at_sizes_between_the_32k_bands_and_keeps_224():
    model = meta_model("bn_inception").eval()
    for side in (7, 8, 9, 10, 30, 39, 62, 100, 110, 135, 240, 263, 299, 320):
        assert model(torch.zeros(1, 3, side, side, device="meta")).shape == (1, 1000), side
    assert model(torch.zeros(1, 3, 110, 299, device="meta")).shape == (1, 1000)
    assert stage_shapes(model, 299)["inception5b"] == (1024, 10, 10)
    with pytest.raises(RuntimeError, match="too small"):  # 6 px: pool2 would have no output
        model(torch.zeros(1, 3, 6, 6, device="meta"))


def test_inception_resnet_block_scales_the_residual():
    block = InceptionResnetA(32, InceptionResnetASpec(8, 8, 8, 8, 8, 8), conv_block(), scale=0.0).eval()
    x = torch.rand(1, 32, 9, 9)
    assert torch.equal(block(x), torch.relu(x))  # scale 0: only the identity path remains
    block.scale = 0.2
    residual = block.conv2d(torch.cat(block.branches(x), 1))
    torch.testing.assert_close(block(x), torch.relu(x + 0.2 * residual))


# ------------------------------------------------------------------ auxiliary classifiers

def test_model_call_returns_logits_and_forward_outputs_every_head_in_both_modes():
    torch.manual_seed(0)
    model = create_model("googlenet_tv", num_classes=7, aux_logits=True)
    x = torch.randn(2, 3, 32, 32)
    for train in (True, False):
        model.train(train)
        logits = model(x)
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7)
        outputs = model.forward_outputs(x)
        assert list(outputs) == ["main", "aux1", "aux2"]
        assert all(out.shape == (2, 7) for out in outputs.values())
    with torch.no_grad():
        torch.testing.assert_close(model.forward_outputs(x)["main"], model(x))


@pytest.mark.parametrize("name,aux_names,size",
                         [("googlenet", ("aux1", "aux2"), 224), ("inception_v3", ("aux",), 299)])
def test_paper_size_aux_heads_run_at_their_standard_input(name, aux_names, size):
    # The 5x5/3 pools of these heads need the 14x14 (GoogLeNet) or 17x17 (v3) grid of 224 / 299 input.
    model = meta_model(name, num_classes=7, aux_logits=True).eval()
    outputs = model.forward_outputs(torch.zeros(1, 3, size, size, device="meta"))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {k: (1, 7) for k in ("main", *aux_names)}


def test_googlenet_without_aux_heads_gives_only_main():
    model = meta_model("googlenet_tv", num_classes=3).eval()
    assert model.aux_names == () and model.aux1 is None
    assert list(model.forward_outputs(torch.zeros(1, 3, 32, 32, device="meta"))) == ["main"]


def test_reset_classifier_resets_the_aux_heads_too():
    model = meta_model("googlenet_tv", aux_logits=True)
    with torch.device("meta"):  # new layers are made on the default device, like nn.Linear's
        model.reset_classifier(5)
    outputs = model.forward_outputs(torch.zeros(1, 3, 64, 64, device="meta"))
    assert {k: v.shape[1] for k, v in outputs.items()} == {"main": 5, "aux1": 5, "aux2": 5}
    assert model.get_classifier().out_features == 5 and model.num_classes == 5


@pytest.mark.parametrize("name", ["googlenet_tv", "inception_v3"])
def test_model_without_aux_loads_a_state_dict_trained_with_aux(name):
    torch.manual_seed(0)
    trained = create_model(name, num_classes=4, aux_logits=True).eval()
    plain = create_model(name, num_classes=4, aux_logits=False).eval()
    result = plain.load_state_dict(trained.state_dict())  # strict
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 80, 80)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), trained(x), rtol=0, atol=0)


def test_strict_loading_still_rejects_other_foreign_keys_and_missing_aux():
    trained = create_model("googlenet_tv", num_classes=4, aux_logits=True)
    plain = create_model("googlenet_tv", num_classes=4)
    state = trained.state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="extra.weight"):
        plain.load_state_dict(state)
    with pytest.raises(RuntimeError, match="aux1"):
        trained.load_state_dict(plain.state_dict())


# ------------------------------------------------------------------ API and small variants

def test_api_on_every_inception_model():
    for name in ["googlenet", "googlenet_tv", "googlenet_small", "inception_v3", "inception_v4",
                 "inception_resnet_v2", "inception_resnet_v1", "bn_inception", "inception_small"]:
        model = meta_model(name, num_classes=6, in_chans=1).eval()
        size = model.data_config.input_size
        assert model.in_chans == 1 and size[0] == 1 and len(model.data_config.mean) == 1
        features = model.forward_features(torch.zeros(1, *size, device="meta"))
        assert features.shape[1] == model.num_features == model.feature_info[-1].num_chs
        assert model.forward_head(features, pre_logits=True).shape == (1, model.num_features)
        assert model.forward_head(features).shape == (1, 6)
        model.reset_classifier(0)
        assert model(torch.zeros(1, *size, device="meta")).shape == (1, model.num_features)


def test_pretrained_sources_are_declared():
    assert get_entry("googlenet_tv").pretrained_sources == ("torchvision",)
    assert get_entry("inception_v3").pretrained_sources == ("torchvision", "timm")
    assert get_entry("inception_v4").pretrained_sources == ("timm",)
    assert get_entry("inception_resnet_v2").pretrained_sources == ("timm",)
    assert get_entry("googlenet").pretrained_sources == ()


def test_transform_input_matches_torchvision_formula_and_needs_rgb():
    assert create_model("googlenet_tv", transform_input=True).transform_input  # (it applies torchvision_input)
    x = torch.randn(1, 3, 8, 8)
    expected = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                          x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                          x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
    torch.testing.assert_close(torchvision_input(x), expected)  # (googlenet_tv's and inception_v3's transform)
    with pytest.raises(ValueError, match="in_chans"):
        create_model("googlenet_tv", in_chans=1, transform_input=True)


@pytest.mark.parametrize("name,options", [("googlenet_small", {}), ("inception_small", {"in_chans": 1})])
def test_small_models_learn_a_batch_of_28x28_mnist_digits(name, options):
    from convolab.data.builtin import load_mnist5k

    torch.manual_seed(0)
    data = load_mnist5k()
    x = (data.train.images[:8].float() / 255 - 0.1307) / 0.3081
    y = data.train.labels[:8]
    model = create_model(name, num_classes=10, img_size=28, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name, peer", [("inception_v3", "inception_v3"), ("googlenet_tv", "googlenet")])
def test_a_model_of_torchvisions_layout_starts_from_torchvisions_initialization(name, peer):
    """Truncated normals, std 0.1 (Inception-v3; its aux classifier 0.001) and 0.01 (GoogLeNet): each weight of ours
    pairs with one of torchvision's of the same size and spread (PyTorch's default gives v3's convolutions 0.042)."""
    torch.manual_seed(0)
    ours = create_model(name, aux_logits=True)
    theirs = getattr(torchvision.models, peer)(weights=None, aux_logits=True, init_weights=True)

    def spreads(model):
        return sorted((p.numel(), p.std().item()) for p in model.parameters() if p.dim() in (2, 4) and p.numel() > 9999)

    mine, peers = spreads(ours), spreads(theirs)
    assert len(mine) == len(peers) > 50
    for (n, std), (m, peer_std) in zip(mine, peers):
        assert n == m and std == pytest.approx(peer_std, rel=0.1), (n, std, peer_std)
