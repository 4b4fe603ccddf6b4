"""ResNet, DenseNet, NiN and the lecture nets equal docs/REFERENCE.md: parameters, MACs, stage shapes.

Counts run on the meta device (shapes only), so even ResNet-152 costs milliseconds.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convolab import create_model
from convolab.analysis import count_macs, count_params
from convolab.layers import (
    BasicBlock,
    Bottleneck,
    DenseBlock,
    DenseLayer,
    PadShortcut,
    PreActBasicBlock,
    PreActBottleneck,
    Transition,
)
from convolab.models._base import CIFAR10_MEAN, IMAGENET_MEAN, MNIST_MEAN
from convolab.models.lecture import InceptionA, ResidualBlock

# name: (input side, params, MACs); docs/REFERENCE.md 1a, 1d, 1e (the lecture nets: counted here, by hand below)
REFERENCE = {
    "resnet18": (224, 11_689_512, 1_814_073_344),
    "resnet34": (224, 21_797_672, 3_663_761_408),
    "resnet50": (224, 25_557_032, 4_089_184_256),
    "resnet101": (224, 44_549_160, 7_801_405_440),
    "resnet152": (224, 60_192_808, 11_513_626_624),
    "resnet50_v1": (224, 25_557_032, 3_857_973_248),
    "resnet101_v1": (224, 44_549_160, 7_570_194_432),
    "resnet152_v1": (224, 60_192_808, 11_282_415_616),
    "resnet20": (32, 269_722, 40_551_040),
    "resnet32": (32, 464_154, 68_862_592),
    "resnet44": (32, 658_586, 97_174_144),
    "resnet56": (32, 853_018, 125_485_696),
    "resnet110": (32, 1_727_962, 252_887_680),
    "resnet1202": (32, 19_421_274, 2_829_238_912),
    "preact_resnet164": (32, 1_703_258, 244_500_992),
    "preact_resnet1001": (32, 10_327_706, 1_487_849_984),
    "densenet121": (224, 7_978_856, 2_834_161_664),
    "densenet169": (224, 14_149_480, 3_359_843_328),
    "densenet201": (224, 20_013_928, 4_291_365_888),
    "densenet161": (224, 28_681_000, 7_727_907_072),
    "densenet40_k12": (32, 1_019_722, 264_812_928),
    "densenet_bc100_k12": (32, 769_162, 287_929_692),
    "densenet100_k12": (32, 6_979_642, 1_769_516_448),
    "densenet100_k24": (32, 27_249_082, 6_889_347_744),
    "densenet_bc250_k24": (32, 15_324_406, 5_418_785_724),
    "densenet_bc190_k40": (32, 25_624_430, 9_301_945_740),
    "nin": (224, 1_992_166, 762_297_352),
}


def meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def stage_shapes(model: nn.Module, modules: list[str], size: tuple[int, int, int]) -> list[tuple[int, ...]]:
    """Output shape (C, H, W) of each named module for one input of `size`."""
    named = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}

    def record(key: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            shapes.setdefault(key, tuple(output.shape[1:]))
        return hook

    hooks = [named[m].register_forward_hook(record(m)) for m in modules]
    with torch.no_grad():
        model.eval()(torch.empty(1, *size, device=next(model.parameters()).device))
    for h in hooks:
        h.remove()
    return [shapes[m] for m in modules]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_params_and_macs_equal_reference(name):
    side, params, macs = REFERENCE[name]
    model = meta(name)
    assert model.data_config.input_size[1:] == (side, side)
    assert count_params(model) == params
    assert count_macs(model, model.data_config.input_size) == macs


def test_stride_placement_changes_macs_not_params():
    v15, v1 = meta("resnet50"), meta("resnet50_v1")
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert count_params(v15) == count_params(v1)


BASIC, BOTTLENECK = (64, 128, 256, 512), (256, 512, 1024, 2048)
RESNET_BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3],
                 "resnet152": [3, 8, 36, 3]}


@pytest.mark.parametrize("name, channels", [("resnet18", BASIC), ("resnet34", BASIC),
                                            ("resnet50", BOTTLENECK), ("resnet152", BOTTLENECK)])
def test_imagenet_resnet_stage_shapes_at_224(name, channels):
    model = meta(name)
    shapes = stage_shapes(model, ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"], (3, 224, 224))
    stages = [(c, s, s) for c, s in zip(channels, (56, 28, 14, 7), strict=True)]
    assert shapes == [(64, 112, 112), (64, 56, 56), *stages]
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == RESNET_BLOCKS[name]


@pytest.mark.parametrize("name, blocks", [("resnet20", 3), ("resnet56", 9), ("resnet110", 18)])
def test_cifar_resnet_has_three_stages_of_16_32_64_with_zero_pad_shortcuts(name, blocks):
    model = meta(name)
    shapes = stage_shapes(model, ["conv1", "layer1", "layer2", "layer3"], (3, 32, 32))
    assert shapes == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [blocks] * 3
    shortcuts = [b.downsample for stage in (model.layer1, model.layer2, model.layer3) for b in stage]
    assert [type(s) for s in shortcuts if s is not None] == [PadShortcut, PadShortcut]
    assert model.data_config.mean == CIFAR10_MEAN


def test_zero_pad_shortcut_subsamples_and_pads_channels_without_parameters():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    shortcut = PadShortcut(2, 6, stride=2)
    y = shortcut(x)
    assert y.shape == (1, 6, 2, 2) and count_params(shortcut) == 0
    assert torch.equal(y[:, 2:4], x[:, :, ::2, ::2])
    assert not y[:, :2].any() and not y[:, 4:].any()


def test_option_b_block_projects_with_1x1_conv_and_bn():
    block = BasicBlock(64, 128, stride=2, shortcut="B")
    assert isinstance(block.downsample[0], nn.Conv2d) and block.downsample[0].kernel_size == (1, 1)
    assert isinstance(block.downsample[1], nn.BatchNorm2d)
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 128, 4, 4)
    assert BasicBlock(64, 64).downsample is None
    with pytest.raises(ValueError, match="shortcut must be"):
        BasicBlock(64, 128, stride=2, shortcut="C")


def test_bottleneck_expands_four_times_and_identity_block_is_residual():
    block = Bottleneck(256, 64).eval()
    for m in (block.bn3,):
        nn.init.zeros_(m.weight)  # the residual branch then adds nothing: out = relu(x)
    x = torch.randn(2, 256, 5, 5)
    assert torch.equal(block(x), torch.relu(x))
    assert Bottleneck(256, 128, stride=2)(x).shape == (2, 512, 3, 3)


def test_preact_blocks_add_without_a_final_relu_and_project_the_activated_input():
    block = PreActBasicBlock(16, 16).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 16, 6, 6)
    assert torch.equal(block(x), x)  # identity path untouched: negatives survive
    down = PreActBottleneck(16, 16, stride=2)
    assert isinstance(down.downsample, nn.Sequential) and len(down.downsample) == 1  # bare 1x1 conv
    assert down(x).shape == (2, 64, 3, 3)


def test_preact_resnet164_normalizes_before_pooling():
    model = meta("preact_resnet164")
    assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [18, 18, 18]
    assert not hasattr(model, "bn1") and isinstance(model.norm, nn.BatchNorm2d)
    assert stage_shapes(model, ["layer1", "layer2", "layer3", "act"], (3, 32, 32)) == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (256, 8, 8)]


# docs/REFERENCE.md 2a: (db1, t1, db2, t2, db3, t3, db4) channels
DENSENET_CHANNELS = {
    "densenet121": (256, 128, 512, 256, 1024, 512, 1024),
    "densenet169": (256, 128, 512, 256, 1280, 640, 1664),
    "densenet201": (256, 128, 512, 256, 1792, 896, 1920),
    "densenet161": (384, 192, 768, 384, 2112, 1056, 2208),
}


@pytest.mark.parametrize("name", sorted(DENSENET_CHANNELS))
def test_imagenet_densenet_block_and_transition_shapes_at_224(name):
    model = meta(name)
    modules = ["features.pool0", "features.denseblock1", "features.transition1", "features.denseblock2",
               "features.transition2", "features.denseblock3", "features.transition3", "features.denseblock4"]
    shapes = stage_shapes(model, modules, (3, 224, 224))
    init = 96 if name == "densenet161" else 64
    sides = (56, 28, 28, 14, 14, 7, 7)
    stages = [(c, s, s) for c, s in zip(DENSENET_CHANNELS[name], sides, strict=True)]
    assert shapes == [(init, 56, 56), *stages]
    assert model.num_features == DENSENET_CHANNELS[name][-1]


def test_cifar_densenets_follow_the_authors_layout():
    plain = meta("densenet40_k12")
    assert stage_shapes(plain, ["features.conv0", "features.denseblock1", "features.transition1",
                                "features.denseblock2", "features.transition2", "features.denseblock3"],
                        (3, 32, 32)) == [(16, 32, 32), (160, 32, 32), (160, 16, 16), (304, 16, 16),
                                         (304, 8, 8), (448, 8, 8)]
    bc = meta("densenet_bc100_k12")
    assert [len(bc.features.get_submodule(f"denseblock{i}")) for i in (1, 2, 3)] == [16, 16, 16]
    assert stage_shapes(bc, ["features.conv0", "features.denseblock1", "features.transition1",
                             "features.denseblock3"], (3, 32, 32)) == [
        (24, 32, 32), (216, 32, 32), (108, 16, 16), (342, 8, 8)]
    assert plain.data_config.mean == bc.data_config.mean == CIFAR10_MEAN


def test_dense_block_concatenates_growth_rate_channels_per_layer():
    block = DenseBlock(4, 10, growth_rate=6, bn_size=None)
    x = torch.randn(2, 10, 5, 5)
    y = block(x)
    assert y.shape == (2, 34, 5, 5) and block.out_channels == 34
    assert torch.equal(y[:, :10], x)  # the input is passed on unchanged
    bottleneck = DenseLayer(10, growth_rate=6, bn_size=4)
    assert bottleneck.conv1.out_channels == 24 and bottleneck(x).shape == (2, 6, 5, 5)
    assert not hasattr(DenseLayer(10, 6, bn_size=None), "conv1")
    transition = Transition(34, compression=0.5)
    assert transition(y).shape == (2, 17, 2, 2)
    with pytest.raises(ValueError, match="compression"):
        Transition(34, compression=0)


def test_d2l_nin_stage_shapes_at_224():
    model = meta("nin")
    assert stage_shapes(model, ["features.0", "features.1", "features.2", "features.3", "features.4",
                                "features.5", "head.fc"], (1, 224, 224)) == [
        (96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12), (384, 5, 5), (10, 5, 5)]
    assert model.data_config.mean == MNIST_MEAN


def test_nin_cifar_is_the_papers_192_160_96_net():
    model = meta("nin_cifar")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [192, 160, 96, 192, 192, 192, 192, 192, 10]
    assert [c.kernel_size[0] for c in convs] == [5, 1, 1, 5, 1, 1, 3, 1, 1]
    assert stage_shapes(model, ["features.1", "features.4", "features.6"], (3, 32, 32)) == [
        (96, 16, 16), (192, 8, 8), (192, 8, 8)]
    assert count_params(model) == (3 * 192 * 25 + 192 + 192 * 160 + 160 + 160 * 96 + 96
                                   + 96 * 192 * 25 + 192 + 2 * (192 * 192 + 192)
                                   + 192 * 192 * 9 + 192 + 192 * 192 + 192 + 192 * 10 + 10)


def test_resnet_data_config_is_imagenet_at_224():
    config = meta("resnet50").data_config
    assert config.input_size == (3, 224, 224) and config.mean == IMAGENET_MEAN


@pytest.mark.parametrize("in_channels", [10, 20, 3])
def test_lecture_inception_a_keeps_hw_and_outputs_88_channels(in_channels):
    block = InceptionA(in_channels)
    assert block(torch.randn(2, in_channels, 12, 12)).shape == (2, 88, 12, 12)


def test_lecture_residual_block_keeps_shape_and_adds_its_input():
    block = ResidualBlock(16)
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)
    x = torch.randn(2, 16, 12, 12)
    assert torch.equal(block(x), torch.relu(x))


def test_inception_mnist_shapes_and_1408_flatten():
    model = create_model("inception_mnist")
    assert stage_shapes(model, ["conv1", "incep1", "conv2", "incep2", "head.flatten", "head.fc"],
                        (1, 28, 28)) == [(10, 24, 24), (88, 12, 12), (20, 8, 8), (88, 4, 4), (1408,), (10,)]
    assert model.head.fc.in_features == 1408 and model.data_config.mean == MNIST_MEAN
    # by hand: 2 stems + InceptionA(10) + InceptionA(20) + Linear(1408, 10)
    def inception(c: int) -> int:
        return (c * 16 + 16) + (c * 16 + 16 + 16 * 24 * 25 + 24) + (c * 16 + 16 + 16 * 24 * 9 + 24
                                                                     + 24 * 24 * 9 + 24) + (c * 24 + 24)
    assert count_params(model) == (1 * 10 * 25 + 10) + inception(10) + (88 * 20 * 25 + 20) + inception(20) + (
        1408 * 10 + 10)


def test_resnet_mnist_shapes_and_512_flatten():
    model = create_model("resnet_mnist")
    assert stage_shapes(model, ["conv1", "rblock1", "conv2", "rblock2", "head.flatten", "head.fc"],
                        (1, 28, 28)) == [(16, 24, 24), (16, 12, 12), (32, 8, 8), (32, 4, 4), (512,), (10,)]
    assert model.head.fc.in_features == 512
    assert count_params(model) == (16 * 25 + 16) + 2 * (16 * 16 * 9 + 16) + (16 * 32 * 25 + 32) + 2 * (
        32 * 32 * 9 + 32) + (512 * 10 + 10)


def test_lecture_nets_take_in_chans_and_reject_too_small_images():
    assert create_model("resnet_mnist", in_chans=3)(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    model = create_model("inception_mnist", in_chans=3, num_classes=4)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 4)
    with pytest.raises(ValueError, match="img_size"):
        create_model("resnet_mnist", img_size=12)


def test_cifar_depth_must_fit_the_block_pattern():
    from convolab.models.resnet import cifar_stages

    assert [s.blocks for s in cifar_stages(1202, BasicBlock)] == [200] * 3
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_stages(21, BasicBlock)
    with pytest.raises(ValueError, match="9n\\+2"):
        cifar_stages(50, PreActBottleneck)  # 6n+2 but not 9n+2


def test_nin_reset_rebuilds_the_class_maps_and_the_model_pickles():
    import io

    model = create_model("nin")
    model.reset_classifier(5)
    convs = [m for m in model.head.fc.modules() if isinstance(m, nn.Conv2d)]
    shapes = [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs]
    assert shapes == [(384, 5, 3), (5, 5, 1), (5, 5, 1)]
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False).eval()
    x = torch.randn(1, 1, 96, 96)
    assert torch.equal(loaded(x), model.eval()(x))
