"""Transfer: loading matching weights, --init-from, freezing with batch norm, the backbone's
learning-rate scale, --until, and the finetune CLI end to end on real digits."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from convolab import create_model
from convolab.cli import main
from convolab.data import ImageData, load_data
from convolab.errors import ConfigError
from convolab.finetune import finetune_trainer, load_matching
from convolab.layers.frozen_norm import FrozenBatchNorm2d
from convolab.training import TrainConfig, Trainer, load_checkpoint


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_data("digits")


def small(data: ImageData, n_train: int = 192) -> ImageData:
    """The first images of a data set: a few optimizer steps, real pixels."""
    return ImageData(data.name, data.train.subset(torch.arange(n_train)), data.test, data.classes)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, digits) -> str:
    """A tiny real checkpoint: lenet5_bn trained one epoch on digits."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    config = TrainConfig(model="lenet5_bn", data="digits", epochs=1, batch_size=32, output=str(out), progress=False)
    Trainer(config, data=digits).fit()
    return str(out / "last.pt")


def test_load_matching_reports_exactly_the_skipped_names():
    source = create_model("lenet5_modern", num_classes=5).state_dict()
    source["extra.weight"] = torch.ones(3)  # not in the model
    del source["features.0.bias"]          # not in the checkpoint
    model = create_model("lenet5_modern", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_matching(model, source)
    assert report.unexpected == ["extra.weight"]
    assert report.missing == ["features.0.bias"]
    assert [(n, c, m) for n, c, m in report.mismatched] == [
        ("head.fc.weight", (5, 84), (10, 84)), ("head.fc.bias", (5,), (10,))]
    assert report.skipped == sorted(["extra.weight", "features.0.bias", "head.fc.weight", "head.fc.bias"])
    after = model.state_dict()
    for name in report.loaded:
        assert torch.equal(after[name], source[name]), name
    for name in ("features.0.bias", "head.fc.weight", "head.fc.bias"):
        assert torch.equal(after[name], before[name]), name
    line = report.summary()
    assert "head.fc.weight (5x84 in checkpoint, 10x84 in model)" in line and "extra.weight" in line


def test_init_from_loads_matching_weights_and_logs_every_skipped_name(tmp_path, pretrained, digits, caplog):
    five = ImageData("five", digits.train.subset(digits.train.labels < 5), digits.test.subset(digits.test.labels < 5),
                     digits.classes[:5])
    config = TrainConfig(model="lenet5_bn", data="digits", epochs=1, output=str(tmp_path / "run"), progress=False,
                         init_from=pretrained)
    with caplog.at_level(logging.INFO, logger="convolab"):
        trainer = Trainer(config, data=five)
    report = trainer.init_report
    assert sorted(n for n, _, _ in report.mismatched) == ["head.fc.bias", "head.fc.weight"]
    assert report.missing == [] and report.unexpected == []
    saved = load_checkpoint(pretrained)["model"]
    assert torch.equal(trainer.model.state_dict()["features.0.weight"], saved["features.0.weight"])
    assert "head.fc.weight (10x84 in checkpoint, 5x84 in model)" in caplog.text


def test_frozen_backbone_weights_and_batch_norm_statistics_stay_bit_identical(tmp_path, digits):
    config = TrainConfig(model="lenet5_bn", data="digits", epochs=1, batch_size=32, output=str(tmp_path / "run"),
                         progress=False, freeze_backbone=True, ema_decay=0.9)
    trainer = Trainer(config, data=small(digits))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    head = {"head.fc.weight", "head.fc.bias"}
    assert {k for k in after if not torch.equal(after[k], before[k])} == head  # only the classifier learnt
    assert any("running_mean" in k for k in before) and any("num_batches_tracked" in k for k in before)
    trainer.model.train()  # what every epoch does: frozen BN must stay in eval mode
    bns = [m for m in trainer.model.modules() if isinstance(m, FrozenBatchNorm2d)]  # (no _BatchNorm: PyTorch's
    assert len(bns) == 4 and not any(m.training for m in bns)  # BN tools leave it alone, as torchvision's)
    assert trainer.model.head.training and trainer.ema.module.features[1].training is False


def test_backbone_lr_scale_gives_the_backbone_its_own_group_at_lr_times_f(tmp_path, digits):
    config = TrainConfig(model="lenet5_modern", data="digits", epochs=1, batch_size=32, lr=0.01,
                         schedule="constant", warmup_epochs=0, output=str(tmp_path / "run"), progress=False,
                         backbone_lr_scale=0.1)
    trainer = Trainer(config, data=small(digits, 64))
    trainer.fit()
    groups = trainer.optimizer.param_groups
    head = {id(p) for p in trainer.model.head.fc.parameters()}
    for group in groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(0.01 if in_head == {True} else 0.001)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(trainer.model.parameters()))
    assert trainer.history[-1]["lr"] == pytest.approx(0.01)  # the logged rate is the heads'


def test_until_keeps_googlenet_up_to_inception4e_with_the_source_weights_and_a_fresh_head():
    torch.manual_seed(0)
    source = create_model("googlenet_tv", num_classes=1000)
    from convolab.models._features import truncate

    net = truncate(source, "inception4e", num_classes=5)
    keys = list(net.state_dict())
    assert not any(k.startswith(("inception5", "maxpool4")) for k in keys)
    assert "inception4e.branch1.conv.weight" in keys or any(k.startswith("inception4e.") for k in keys)
    for name, value in net.state_dict().items():
        if not name.startswith("head."):
            assert value is source.state_dict()[name] or torch.equal(value, source.state_dict()[name]), name
    assert net.head.fc.in_features == 832 and net.head.fc.out_features == 5
    assert net.feature_info[-1].module == "inception4e" and net.num_features == 832
    net.eval()
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    # The checkpoint recipe rebuilds the same network by name.
    rebuilt = create_model("googlenet_tv", num_classes=5, until="inception4e")
    assert list(rebuilt.state_dict()) == keys
    with pytest.raises(ConfigError, match="unknown layer 'inception9z'.*inception4e"):
        truncate(source, "inception9z")


def test_finetune_cli_end_to_end_with_a_frozen_backbone_learns_and_keeps_the_backbone(tmp_path, pretrained,
                                                                                       capsys):
    out = tmp_path / "ft"
    code = main(["finetune", pretrained, "--data", "digits", "--epochs", "1", "--batch-size", "32", "--lr", "0.05",
                 "--freeze-backbone", "--output", str(out), "--no-progress"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test accuracy: 0.") and float(last.split()[-1]) > 0.5, last
    for name in ("config.json", "metrics.csv", "last.pt", "best.pt", "curves.png"):
        assert (out / name).is_file(), name
    ckpt, source = load_checkpoint(out / "last.pt"), load_checkpoint(pretrained)["model"]
    changed = {k for k, v in ckpt["model"].items() if not torch.equal(v, source[k])}
    assert changed == {"head.fc.weight", "head.fc.bias"}  # BN statistics included: all else bit-identical


def test_finetune_cli_until_writes_a_run_whose_network_is_rebuilt_by_name(tmp_path, pretrained, capsys):
    out = tmp_path / "ft"
    code = main(["finetune", pretrained, "--data", "digits", "--epochs", "1", "--batch-size", "64",
                 "--until", "features.7", "--backbone-lr-scale", "0.1", "--output", str(out), "--no-progress"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("test accuracy: 0.")
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["model_options"] == {"until": "features.7"} and ckpt["model_name"] == "lenet5_bn"
    model = create_model(ckpt["model_name"], num_classes=ckpt["num_classes"], in_chans=ckpt["in_chans"],
                         **ckpt["model_options"])
    model.load_state_dict(ckpt["model"])  # strict: the cut network with its new head, by name
    assert not any(k.startswith("head.fc1") for k in ckpt["model"]) and model.head.fc.in_features == 16


def test_finetune_replaces_the_head_for_new_classes_and_converts_channels(tmp_path, pretrained, digits):
    rgb = ImageData("rgb", small(digits).train, digits.test, digits.classes)
    rgb.train.images = rgb.train.images.expand(-1, 3, -1, -1).contiguous()
    rgb.test = type(rgb.test)(digits.test.images.expand(-1, 3, -1, -1).contiguous(), digits.test.labels % 3)
    rgb.train.labels = rgb.train.labels % 3
    rgb.classes = ["a", "b", "c"]
    config = TrainConfig(model="", epochs=1, output=str(tmp_path / "run"), progress=False, backbone_lr_scale=0.5)
    trainer = finetune_trainer(pretrained, config, data=rgb)
    assert trainer.model.head.fc.out_features == 3 and trainer.transform.channels == 1
    assert trainer.image_size == (28, 28) and trainer.config.init_from == pretrained
    x = trainer.transform(rgb.train.images[:4])
    assert x.shape == (4, 1, 28, 28)


def test_a_fine_tuned_run_on_data_of_other_channels_resumes_exactly(tmp_path, digits):
    """A colour checkpoint fine-tuned on grey digits keeps its 3 input channels (the digits are
    converted); an interrupted run resumes on that network and ends as the uninterrupted one."""
    from conftest import signal_after_step, write_png_folder

    from convolab.training.engine import TrainingInterrupted

    colour = write_png_folder(tmp_path / "colour", per_class=8, size=28)
    Trainer(TrainConfig(model="lenet5_modern", data=str(colour), epochs=1, batch_size=8, progress=False,
                        output=str(tmp_path / "pre"))).fit()
    config = TrainConfig(model="", data="digits", epochs=2, batch_size=64, progress=False)
    whole = finetune_trainer(tmp_path / "pre" / "last.pt", dataclasses.replace(config, output=str(tmp_path / "a")),
                             data=digits)
    assert whole.model.in_chans == 3 and digits.image_shape[0] == 1
    expected = whole.fit().history
    cut = finetune_trainer(tmp_path / "pre" / "last.pt", dataclasses.replace(config, output=str(tmp_path / "b")),
                           data=digits)
    signal_after_step(cut, cut.steps_per_epoch + 5)
    with pytest.raises(TrainingInterrupted):
        cut.fit()
    resumed = Trainer.resume(tmp_path / "b", data=digits)
    assert resumed.model.in_chans == 3
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step")
    assert [[r[k] for k in keys] for r in resumed.fit().history] == [[r[k] for k in keys] for r in expected]


def test_finetune_and_a_trainer_given_data_take_the_subsets_asked_for(tmp_path, pretrained, digits):
    # finetune loaded the whole data while config.json recorded the subsets (a resumed run then took them)
    out = tmp_path / "ft"
    assert main(["finetune", pretrained, "--data", "digits", "--train-subset", "96", "--test-subset", "40",
                 "--epochs", "1", "--batch-size", "32", "--output", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 96 // 32
    assert main(["evaluate", str(out), "--output", str(tmp_path / "ev")]) == 0
    config = TrainConfig(model="lenet5_modern", data="digits", train_subset=100, test_subset=50, epochs=1,
                         output=str(tmp_path / "t"), progress=False)
    trainer = Trainer(config, data=digits)
    assert (len(trainer.run.data.train), len(trainer.run.data.test)) == (100, 50)
