"""Review of the Python API as a timm / torchvision / Lightning user meets it: a new Trainer over a finished run,
a run of a model of no registered name resumed, create_model(pretrained=...)'s mode and options, counting a
.double() model, labels of the wrong shape, a DataLoader as data, load_matching given a whole checkpoint, a plain
safetensors state dict, exporting a features_only model, and the README's data snippet. Each fails on the code
before the review (the test says what it did)."""
from __future__ import annotations

import copy
import os
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import history_of, signal_after_step, write_png_folder
from torch import nn

import convolab
from convolab.analysis import count_macs, summary
from convolab.cli import main
from convolab.compare import read_run
from convolab.data import Split
from convolab.errors import CheckpointError, ConfigError, ConvolabError
from convolab.export.exporters import export_torchscript
from convolab.finetune import load_matching
from convolab.pretrained import choose_weights
from convolab.training import TrainConfig, Trainer, TrainingInterrupted

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def tiny(output: Path, **changes) -> TrainConfig:
    values = dict(model="lenet5_modern", data="mnist5k", train_subset=256, test_subset=128, batch_size=32,
                  epochs=1, progress=False, output=str(output))
    return TrainConfig(**(values | changes))


class Net(nn.Module):
    """A network of the user's own: no registered name."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                               nn.Linear(4 * 7 * 7, 10))

    def forward(self, x):
        return self.f(x)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch run (its folder is copied, never changed)."""
    run = tmp_path_factory.mktemp("api") / "run"
    Trainer(tiny(run)).fit()
    return run


# ----- 1. a new Trainer over a finished run ----------------------------------------------------------------
def test_a_new_trainer_refuses_a_folder_that_holds_a_run_and_a_resumed_one_continues_it(finished, tmp_path):
    """(before: the second Trainer replaced best.pt, last.pt, metrics.csv and config.json without a word)"""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt", "metrics.csv", "config.json")}
    with pytest.raises(ConfigError) as refused:
        Trainer(tiny(run, seed=3))
    line = str(refused.value)
    assert "\n" not in line and "already holds a run (config.json, last.pt, best.pt, metrics.csv)" in line
    assert f"continue it with Trainer.resume({str(run)!r}).fit()" in line, line
    with pytest.raises(ConfigError, match=re.escape(f"Trainer.resume({str(run)!r}, model=...).fit()")):
        Trainer(tiny(run), model=Net())  # (a model of no registered name is given again)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not (run / ".convolab.lock").exists()
    assert Trainer.resume(run, epochs=2).fit().history[-1]["epoch"] == 2


# ----- 2. a run of a model of no registered name ---------------------------------------------------------
def test_a_run_of_an_unregistered_model_resumes_exactly_with_the_model_given(tmp_path):
    """(before: the interrupt said to build a new Trainer, which restarts the run; Trainer.resume refused it)"""
    torch.manual_seed(0)
    start = Net()
    whole = Trainer(tiny(tmp_path / "whole", epochs=2), model=copy.deepcopy(start)).fit()
    cut = Trainer(tiny(tmp_path / "cut", epochs=2), model=copy.deepcopy(start))
    signal_after_step(cut, 11)  # mid-epoch 2 (8 steps an epoch)
    with pytest.raises(TrainingInterrupted) as stopped:
        cut.fit()
    call = f"Trainer.resume({str(tmp_path / 'cut')!r}, model=...).fit()"
    assert call in str(stopped.value), stopped.value
    with pytest.raises(CheckpointError, match=re.escape(call)):
        Trainer.resume(tmp_path / "cut")
    with pytest.raises(CheckpointError, match="the model given to Trainer.resume is not the one"):
        Trainer.resume(tmp_path / "cut", model=convolab.create_model("lenet5"))
    resumed = Trainer.resume(tmp_path / "cut", model=Net())
    assert resumed.epoch == 1 and 8 < resumed.step < 16  # (stopped at the fold after step 11)
    assert history_of(resumed.fit().history) == history_of(whole.history)
    with pytest.raises(CheckpointError, match="holds a model of no registered name .*Trainer.resume"):
        convolab.create_model("lenet5", pretrained=tmp_path / "cut")  # (before: "unknown model ''")


def test_a_report_of_a_run_of_an_unregistered_model_gives_its_figures_without_a_cost(tmp_path, capsys):
    """(before: `convolab report RUN` of such a run was "unknown model ''", exit 2)"""
    Trainer(tiny(tmp_path / "run", epochs=1), model=Net()).fit()
    assert main(["report", str(tmp_path / "run"), "--output", str(tmp_path / "report")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    cells = [cell.strip() for cell in rows[1].strip("|").split("|")]
    assert cells[1:3] == ["-", "-"] and cells[6] == "1", rows  # (parameters and MACs unknown; its epoch)
    assert read_run(tmp_path / "run").input_size == [1, 28, 28]
    Trainer(tiny(tmp_path / "nameless", model=""), model=Net()).fit()  # (a config naming no model: the folder's name)
    assert read_run(tmp_path / "nameless").model == "nameless"


# ----- 3. and 4. create_model(pretrained=...): train mode, options that leave the weights as they are --------
@pytest.fixture
def tv_cache(tmp_path, monkeypatch) -> Path:
    """TORCH_HOME in tmp_path; the network never asked."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CONVOLAB_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def seed(cache: Path, name: str, peer_name: str, **kwargs) -> nn.Module:
    """A random torchvision model saved where torch.hub looks for `name`'s default weights."""
    torch.manual_seed(1)
    peer = getattr(torchvision.models, peer_name)(weights=None, **kwargs).eval()
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(peer.state_dict(), cache / os.path.basename(choose_weights(name, True).handle.url))
    return peer


def test_create_model_with_weights_comes_in_train_mode(finished, tv_cache):
    """(before: in eval mode, unlike timm's and torchvision's: a loop of one's own trained with frozen BN)"""
    assert convolab.create_model("lenet5_modern", pretrained=finished).training
    seed(tv_cache, "resnet18", "resnet18")
    assert convolab.create_model("resnet18", pretrained=True, num_classes=3).training


def test_pretrained_takes_the_options_that_leave_the_weights_meaning_the_same(tv_cache):
    """(before: drop_rate and aux_logits were refused with any weights)"""
    peer = seed(tv_cache, "resnet18", "resnet18")
    model = convolab.create_model("resnet18", pretrained=True, drop_rate=0.2)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.2]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), peer(x), rtol=0, atol=1e-5)
    # googlenet: torchvision's googlenet(weights=..., aux_logits=True) keeps heads that are not pretrained, and warns
    peer = seed(tv_cache, "googlenet_tv", "googlenet", aux_logits=True, transform_input=True, init_weights=False)
    with pytest.warns(UserWarning, match="auxiliary heads in the pretrained googlenet_tv model are NOT pretrained"):
        model = convolab.create_model("googlenet_tv", pretrained=True, aux_logits=True)
    assert model.aux_names == ("aux1", "aux2") and model.training
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), peer(x), rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the weights' own value: no change, no warning)
        convolab.create_model("googlenet_tv", pretrained=True, transform_input=True)
    with pytest.raises(ConfigError, match="transform_input cannot be given with pretrained="):
        convolab.create_model("googlenet_tv", pretrained=True, transform_input=False)  # (the first conv's input)


# ----- 5. count_macs and summary of a .double() / .half() model, and inputs the model cannot take ------------
def test_count_macs_takes_the_parameters_dtype_and_says_a_bad_input_in_one_line():
    """(before: count_macs raised torch's RuntimeError, and summary blamed the input size for a .double() model)"""
    model = convolab.create_model("resnet20")
    macs = count_macs(model, (3, 32, 32))
    assert count_macs(copy.deepcopy(model).double(), (3, 32, 32)) == macs
    assert summary(copy.deepcopy(model).double(), (3, 32, 32)).total_macs == macs
    with pytest.raises(ConfigError, match=r"^resnet20 expects 3-channel input, got 1x32x32"):
        count_macs(model, (1, 32, 32))
    with pytest.raises(ConfigError, match=r"^input 1x4x4 is too small for lenet5 \(default size 1x28x28\): "):
        count_macs(convolab.create_model("lenet5"), (1, 4, 4))


# ----- 6. and 7. data given in Python ------------------------------------------------------------------------
def test_split_refuses_labels_that_are_not_one_class_index_an_image():
    """(before: N x 1 labels were taken, and training failed mid-epoch in the loss, leaving a config.json)"""
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"labels must be a 1-D integer tensor .* \(4, 1\); give labels.flatten"):
        Split(images, torch.zeros(4, 1, dtype=torch.int64))
    with pytest.raises(ConfigError, match="labels must be a 1-D integer tensor"):
        Split(images, torch.tensor([0.0, 1.5, 1.0, 0.0]))
    assert Split(images, torch.arange(4, dtype=torch.int32)).labels.dtype == torch.int64


def test_a_dataloader_as_data_is_one_line_before_anything_is_written(tmp_path):
    """(before: AttributeError: 'DataLoader' object has no attribute 'test')"""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(8, 1, 28, 28),
                                                                        torch.zeros(8, dtype=torch.int64)))
    with pytest.raises(ConfigError, match=r"Trainer\(data=...\) takes convolab data, not a DataLoader: "
                                          r"convolab.data.ImageData\(name, Split\("):
        Trainer(tiny(tmp_path / "run"), data=loader)
    assert not (tmp_path / "run").exists()


# ----- 8. smaller ----------------------------------------------------------------------------------------
def test_load_matching_takes_a_whole_checkpoint_and_a_ddp_state_dict_and_refuses_nothing_matching(finished):
    """(before: "loaded 0 of the model's 10 tensors", without an error)"""
    checkpoint = torch.load(finished / "best.pt", weights_only=False)
    assert len(load_matching(convolab.create_model("lenet5_modern"), checkpoint).loaded) == 10
    ddp = {f"module.{k}": v for k, v in checkpoint["model"].items()}
    model = convolab.create_model("lenet5_modern")
    assert len(load_matching(model, ddp).loaded) == 10
    assert torch.equal(model.state_dict()["head.fc.weight"], checkpoint["model"]["head.fc.weight"])
    with pytest.raises(CheckpointError, match=r"^none of the state dict's 10 entries matches any of the model's"):
        load_matching(Net(), checkpoint["model"])


def test_a_plain_safetensors_state_dict_loads_into_the_model_named(tmp_path):
    """(before: "its model is unknown", though the caller named it)"""
    from safetensors.torch import save_file

    source = convolab.create_model("resnet20")
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "x.safetensors"))
    model = convolab.create_model("resnet20", pretrained=tmp_path / "x.safetensors")
    assert model.training and torch.equal(model.conv1.weight, source.conv1.weight)
    with pytest.raises(CheckpointError, match=r"holds a plain state dict .* resnet20\(num_classes=5\): head.fc.weight"):
        convolab.create_model("resnet20", num_classes=5, pretrained=str(tmp_path / "x.safetensors"))


def test_exporting_a_features_only_model_is_one_line(tmp_path):
    """(before: AttributeError: 'list' object has no attribute 'float')"""
    model = convolab.create_model("resnet20", features_only=True).eval()
    with pytest.raises(ConvolabError, match="gives a list of outputs, not one tensor of logits"):
        export_torchscript(model, tmp_path / "f.pt", (3, 32, 32))
    assert not (tmp_path / "f.pt").exists()


def test_the_readmes_data_snippet_runs_on_small_images(tmp_path, monkeypatch):
    """(before: load_data gave small images as ImageData, which has no train_loader: AttributeError)"""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index('photos = load_data("~/photos"')  # (the snippet's data part: load_data is imported above it)
    snippet = "from convolab.data import load_data\n" + \
        text[start:text.index("\n", text.index("for images, labels, index in photos.batches", start))]
    folder = write_png_folder(tmp_path / "photos", per_class=4, size=12)
    code = snippet.replace('"~/photos"', repr(str(folder))).replace("workers=4", "workers=0").replace("224", "16")
    code = code.replace("photos.train): ...", "photos.train):\n    seen['shape'] = tuple(images.shape); break  #")
    seen = {}
    exec(code, {"seen": seen})  # noqa: S102
    assert seen["shape"][1:] == (3, 16, 16)
