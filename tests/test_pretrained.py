"""Published weights (issue 15): `create_model(name, pretrained=...)` through torchvision's weights API and
timm's hub, on caches this file seeds with random weights under the exact names the hubs expect (no
network: CONVOLAB_OFFLINE=1); the verbs with `--pretrained`; offline and damaged-file errors as one line;
safetensors folders; fine-tuning defaults for a pretrained backbone."""
from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import randomized
from PIL import Image
from torch import nn

import convolab
from convolab.cli import main
from convolab.data.decode import center_box, read_image
from convolab.errors import CheckpointError, ConfigError
from convolab.finetune import pretrained_defaults
from convolab.pretrained import WeightsError, choose_weights, weights_record
from convolab.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

# torchvision's builders as the weights build them: Inception's input transform and auxiliary heads on
TV_KWARGS = {"googlenet": {"aux_logits": True, "transform_input": True, "init_weights": False},
             "inception_v3": {"aux_logits": True, "transform_input": True, "init_weights": False}}
TV_NAMES = {"resnet18": "resnet18", "densenet121": "densenet121", "googlenet_tv": "googlenet",
            "inception_v3": "inception_v3"}


def seed_torchvision(cache_root: Path, name: str) -> tuple[nn.Module, Path]:
    """A random torchvision model saved where torch.hub looks for `name`'s default weights."""
    tv_name = TV_NAMES[name]
    torch.manual_seed(1)
    peer = randomized(getattr(torchvision.models, tv_name)(weights=None, **TV_KWARGS.get(tv_name, {})))
    url = choose_weights(name, True).handle.url
    file = cache_root / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(peer.state_dict(), file)
    return peer, file


def seed_timm(cache_root: Path, hub_name: str, file_name: str = "model.safetensors") -> tuple[nn.Module, Path]:
    """A random timm model as the Hugging Face hub cache holds it: snapshots/REV/model.safetensors (or an older
    repository's pytorch_model.bin) + refs/main."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(1)
    peer = randomized(timm.create_model(hub_name.split(".")[0], pretrained=False))
    repo = cache_root / "hf" / "hub" / f"models--timm--{hub_name}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    file = repo / "snapshots" / "0123abcd" / file_name
    file.parent.mkdir(parents=True)
    if file_name.endswith(".bin"):
        torch.save(peer.state_dict(), file)
    else:
        save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(file))
    return peer, file


def write_images(folder: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 6,
                 size: int = 48) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for split, count in (("train", per_class), ("test", 2)):
        for c, name in enumerate(classes):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8) + np.uint8(120 * c)
                path = folder / split / name / f"{i}.png"
                Image.fromarray(pixels).save(path)
                paths.append(path)
    return paths


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


# ----- create_model(name, pretrained=True) equals the peer with the same weights ------------------------
@pytest.mark.parametrize("name, size", [("resnet18", 64), ("densenet121", 64), ("googlenet_tv", 64),
                                        ("inception_v3", 80)])
def test_torchvision_weights_from_the_hub_cache_give_the_peers_outputs(offline_caches, name, size):
    peer, _ = seed_torchvision(offline_caches, name)
    ours = convolab.create_model(name, pretrained=True).eval()  # (it comes in train mode, as the peers)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=0, atol=1e-5)
    cfg = ours.pretrained_cfg
    assert cfg["weights"].startswith(f"torchvision:{TV_NAMES[name]}.IMAGENET1K_")
    assert cfg["classes"][:2] == ["tench", "goldfish"] and len(cfg["classes"]) == 1000
    assert cfg["mean"] == [0.485, 0.456, 0.406] and ours.data_config.input_size[-1] == cfg["image_size"][0]


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_timm_weights_from_the_hf_cache_give_the_peers_outputs(offline_caches, file_name):
    peer, _ = seed_timm(offline_caches, "inception_v4.tf_in1k", file_name)
    ours = convolab.create_model("inception_v4", pretrained="timm").eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=0, atol=1e-5)
    cfg = ours.pretrained_cfg
    assert cfg["weights"] == "timm:inception_v4.tf_in1k" and cfg["image_size"] == [299, 299]
    assert cfg["mean"] == [0.5, 0.5, 0.5] and cfg["crop_pct"] == 0.875 and cfg["classes"][0] == "tench"


def test_a_weights_name_means_the_weights_even_beside_a_file_of_that_name(offline_caches, tmp_path, monkeypatch):
    peer, _ = seed_torchvision(offline_caches, "resnet18")
    monkeypatch.chdir(tmp_path)
    for word in ("torchvision", "IMAGENET1K_V1"):
        (tmp_path / word).write_bytes(b"not weights")
        assert torch.equal(convolab.create_model("resnet18", pretrained=word).conv1.weight, peer.conv1.weight)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        convolab.create_model("resnet18", pretrained="./torchvision")  # the file, asked for as a path


def test_other_num_classes_replaces_the_head_and_keeps_the_backbone(offline_caches):
    peer, _ = seed_torchvision(offline_caches, "resnet18")
    ours = convolab.create_model("resnet18", pretrained="IMAGENET1K_V1", num_classes=5)
    assert ours.get_classifier().out_features == 5
    assert torch.equal(ours.conv1.weight, peer.conv1.weight)
    # (the new head's outputs are not ImageNet's first 5: the weights' class names go, their preprocessing stays)
    assert "classes" not in ours.pretrained_cfg and ours.pretrained_cfg["num_classes"] == 5
    assert ours.pretrained_cfg["weights"] == "torchvision:resnet18.IMAGENET1K_V1" and "crop_pct" in ours.pretrained_cfg
    same = convolab.create_model("resnet18", pretrained="IMAGENET1K_V1")
    assert len(same.pretrained_cfg["classes"]) == 1000
    same.reset_classifier(10)
    assert "classes" not in same.pretrained_cfg
    with pytest.raises(ConfigError, match="out_indices .* features_only=True too"):
        convolab.create_model("resnet18", pretrained="IMAGENET1K_V1", out_indices=(1, 2))
    with pytest.raises(WeightsError, match="IMAGENET1K_V1"):
        convolab.create_model("resnet18", pretrained="IMAGENET1K_V9")
    with pytest.raises(WeightsError, match="loads inception_v4's weights from timm only, not from torchvision"):
        convolab.create_model("inception_v4", pretrained="torchvision")


def test_the_weights_options_rebuild_the_model_the_verbs_use():
    """Each model's recorded options build the architecture its converted weights fit (meta device: no memory)."""
    for name in ("googlenet_tv", "inception_v3"):
        tv = TV_NAMES[name]
        peer = getattr(torchvision.models, tv)(weights=None, **TV_KWARGS[tv])
        if tv == "googlenet":
            peer.aux1 = peer.aux2 = None  # as torchvision leaves it when the weights are loaded
        expected = {k: v.shape for k, v in convolab.interop.from_torchvision(peer).state_dict().items()}
        with torch.device("meta"):
            model = convolab.models.create_model(name, **convolab.pretrained.SOURCES[name][0].options)
        assert {k: v.shape for k, v in model.state_dict().items()} == expected


# ----- errors: a model without weights, missing and damaged files -----------------------------------------
def test_a_model_without_weights_gets_one_line_listing_those_with(offline_caches, capsys, tmp_path):
    with pytest.raises(WeightsError, match="lenet5 has no published weights.*resnet18"):
        convolab.create_model("lenet5", pretrained=True)
    image = write_images(tmp_path / "img", per_class=1)[0]
    assert main(["predict", "lenet5", "--pretrained", str(image)]) == 2
    assert "densenet121, densenet161" in one_line_error(capsys)


def test_missing_weights_name_the_file_the_cache_and_how_to_place_it(offline_caches, capsys, tmp_path):
    image = write_images(tmp_path / "img", per_class=1)[0]
    assert main(["predict", "resnet18", "--pretrained", str(image)]) == 2
    err = one_line_error(capsys)
    folder = offline_caches / "torch" / "hub" / "checkpoints"
    assert "resnet18-f37072fd.pth" in err and str(folder) in err and "$TORCH_HOME/hub/checkpoints" in err
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in err
    assert main(["predict", "inception_v4", "--pretrained", str(image)]) == 2
    err = one_line_error(capsys)
    hub_folder = offline_caches / "hf" / "hub" / "models--timm--inception_v4.tf_in1k"
    assert "model.safetensors" in err and str(hub_folder) in err


def test_without_network_the_line_comes_at_once_without_the_libraries_retries(offline_caches, monkeypatch):
    monkeypatch.delenv("CONVOLAB_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(WeightsError, match="no network: download.pytorch.org does not resolve"):
        convolab.create_model("resnet18", pretrained=True)
    with pytest.raises(WeightsError, match="no network: huggingface.co does not resolve"):
        convolab.create_model("inception_v4", pretrained=True)


def test_a_truncated_weights_file_is_named_with_delete_it(offline_caches, capsys, tmp_path):
    _, file = seed_torchvision(offline_caches, "resnet18")
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
    image = write_images(tmp_path / "img", per_class=1)[0]
    assert main(["predict", "resnet18", "--pretrained", str(image)]) == 2
    err = one_line_error(capsys)
    assert str(file) in err and "delete it" in err


def test_a_truncated_hf_safetensors_file_is_named_with_delete_it(offline_caches):
    pytest.importorskip("timm")
    from safetensors.torch import save_file

    repo = offline_caches / "hf" / "hub" / "models--timm--inception_resnet_v2.tf_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("rev1")
    file = repo / "snapshots" / "rev1" / "model.safetensors"
    file.parent.mkdir(parents=True)
    save_file({"w": torch.zeros(1000)}, str(file))
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(WeightsError, match=f"{file}.*delete it"):
        convolab.create_model("inception_resnet_v2", pretrained=True)


def test_timm_weights_without_timm_say_pip_install_timm(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(WeightsError, match="pip install timm"):
        convolab.create_model("inception_v4", pretrained=True)


# ----- the verbs with --pretrained ----------------------------------------------------------------------
def test_predict_prints_the_weights_class_names(offline_caches, capsys, tmp_path):
    seed_torchvision(offline_caches, "resnet18")
    image = write_images(tmp_path / "img", per_class=1)[0]
    assert main(["predict", "resnet18", "--pretrained", str(image), "--topk", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    categories = choose_weights("resnet18", True).handle.meta["categories"]
    fields = line.split("  ")
    assert fields[0] == str(image) and fields[1] in categories and len(fields) == 5
    assert all(f.rsplit(" ", 1)[0] in categories for f in fields[3:])


def test_evaluate_and_features_take_a_model_name_with_pretrained(offline_caches, capsys, tmp_path, monkeypatch):
    seed_torchvision(offline_caches, "resnet18")
    write_images(tmp_path / "fish", classes=("tench", "goldfish"), per_class=2, size=40)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "resnet18", "--pretrained", "--data", "fish"]) == 0
    out = capsys.readouterr().out
    assert "resnet18 on fish: 4 test images" in out and "(other classes)" in out  # not 1000 rows
    assert (tmp_path / "resnet18-evaluation" / "confusion.png").is_file()
    assert main(["features", "resnet18", "--pretrained", "--data", "fish", "--out", "f.npz"]) == 0
    arrays = np.load(tmp_path / "f.npz")
    assert arrays["train_features"].shape == (4, 512) and list(arrays["classes"]) == ["goldfish", "tench"]


def test_evaluate_and_features_of_published_weights_without_data_say_give_data(offline_caches, capsys, tmp_path,
                                                                              monkeypatch):
    """Without --data they fell back to the weights' record, "imagenet", and said "unknown data set 'imagenet'", a
    name the user never gave, and not what to do."""
    seed_torchvision(offline_caches, "resnet18")
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "resnet18", "--pretrained"]) == 2
    assert "resnet18's published weights were trained on ImageNet, which convolab does not load: give --data, a " \
           "folder or tar of images of some of ImageNet's classes" in one_line_error(capsys)
    assert main(["features", "resnet18", "--pretrained", "--out", "f.npz"]) == 2
    assert "give --data, the images to compute the features of" in one_line_error(capsys)
    assert not (tmp_path / "f.npz").exists() and not (tmp_path / "resnet18-evaluation").exists()


def test_models_pretrained_lists_source_weights_top1_and_input(capsys):
    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["model", "source", "weights", "top-1"]
    assert any(line.split()[:4] == ["resnet50", "torchvision", "IMAGENET1K_V2", "*"] and "80.86" in line
               and line.endswith("3x224x224") for line in out.splitlines())
    assert any(line.startswith("inception_v4") and "timm" in line and "3x299x299" in line for line in out.splitlines())


def test_summary_pretrained_uses_the_weights_input_size(capsys):
    assert main(["summary", "inception_v3", "--pretrained", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"][-1] == 299


def test_predict_resizes_as_the_weights_specify_bicubic_for_timms(tmp_path):
    pytest.importorskip("timm")
    assert choose_weights("inception_v4", True).interpolation == "bicubic"
    assert choose_weights("resnet18", True).interpolation == "bilinear"
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)).save(path)
    crops = {how: read_image(path, center_crop_size=32, crop_pct=0.875, interpolation=how)
             for how in ("bilinear", "bicubic")}
    expected = {how: torch.from_numpy(np.array(Image.open(path).resize(
        (32, 32), resample, box=center_box(131, 97, 32, 0.875)))).permute(2, 0, 1)
        for how, resample in (("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC))}
    assert all(torch.equal(crops[how], expected[how]) for how in crops)
    assert not torch.equal(crops["bilinear"], crops["bicubic"])


def test_pretrained_defaults_only_fill_what_was_not_given():
    config = TrainConfig(model="", data="x")
    assert pretrained_defaults(config, set()).normalize == "model"
    assert pretrained_defaults(config, set()).backbone_lr_scale == 0.1
    assert pretrained_defaults(config, {"normalize"}).normalize == "data"
    frozen = TrainConfig(model="", data="x", freeze_backbone=True)
    assert pretrained_defaults(frozen, set()).backbone_lr_scale is None


def test_finetune_pretrained_end_to_end_then_evaluate_predict_export_safetensors(offline_caches, capsys, tmp_path):
    seed_torchvision(offline_caches, "resnet18")
    images = write_images(tmp_path / "photos")
    run = tmp_path / "run"
    assert main(["finetune", "resnet18", "--pretrained", "--data", str(tmp_path / "photos"), "--epochs", "2",
                 "--batch-size", "4", "--output", str(run), "--no-progress", "--threads", "1"]) == 0
    assert "test accuracy:" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["normalize"] == "model" and config["backbone_lr_scale"] == 0.1
    assert config["image_size"] == 224 and config["init_from"] == "torchvision:resnet18.IMAGENET1K_V1"
    record = weights_record("resnet18", run)
    assert record["mean"] == [0.485, 0.456, 0.406] and record["classes"] == ["cat", "dog"]

    assert main(["evaluate", str(run)]) == 0
    assert "top-1 accuracy:" in capsys.readouterr().out
    assert main(["predict", str(run), str(images[0]), str(images[-1])]) == 0
    from_checkpoint = capsys.readouterr().out
    assert main(["export", str(run), "--format", "safetensors"]) == 0
    capsys.readouterr()
    folder = run / "best-safetensors"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert main(["predict", str(folder), str(images[0]), str(images[-1])]) == 0
    assert capsys.readouterr().out == from_checkpoint  # the checkpoint's own predictions

    model = convolab.create_model("resnet18", pretrained=folder)
    assert model.pretrained_cfg["classes"] == ["cat", "dog"] and model.get_classifier().out_features == 2


def test_a_safetensors_tensor_of_the_wrong_shape_gets_one_line(offline_caches, capsys, tmp_path):
    from safetensors.torch import load_file, save_file

    seed_torchvision(offline_caches, "resnet18")
    folder = tmp_path / "st"
    assert main(["export", "resnet18", "--pretrained", "--format", "safetensors", "--out", str(folder)]) == 0
    capsys.readouterr()
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["head.fc.weight"] = torch.zeros(7, 512)
    save_file(tensors, str(folder / "model.safetensors"))
    image = write_images(tmp_path / "img", per_class=1)[0]
    assert main(["predict", str(folder), str(image)]) == 2
    assert "head.fc.weight is 7x512" in one_line_error(capsys)


# ----- a record's values, edited or damaged: one line naming the file and the key (and a lone file's header) -----
@pytest.fixture(scope="module")
def digits_export(tmp_path_factory) -> Path:
    """A run of one epoch on the digits ({root}/run) and its safetensors folder ({root}/st), with a digit image."""
    root = tmp_path_factory.mktemp("record")
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(root / "run")]) == 0
    assert main(["export", str(root / "run"), "--format", "safetensors", "--out", str(root / "st")]) == 0
    Image.new("L", (28, 28), 90).save(root / "digit.png")
    return root


EDITS = [  # (key, edited value, the words of the line after "FILE: ")
    ("mean", 0.3, "its 'mean' is 0.3, not a list of 1 finite number, one per input channel ('in_chans')"),
    ("mean", [0.1, 0.2, 0.3], "its 'mean' is [0.1, 0.2, 0.3], not a list of 1 finite number"),
    ("std", [0], "its 'std' is [0], but every value must be > 0"),
    ("std", [float("nan")], "its 'std' is [NaN], not a list of 1 finite number"),
    ("image_size", 28, "its 'image_size' is 28, not [height, width] in pixels (two whole numbers >= 1)"),
    ("image_size", [32, 32], "its 'image_size' [32, 32] does not fit lenet5_modern, whose layers are built for "
                             "[28, 28]"),
    ("classes", list("012345678"), "its 'classes' lists 9 names for the model's 10 outputs ('num_classes')"),
    ("classes", [0, 1], "its 'classes' is [0, 1], not a list of class names"),
]


@pytest.mark.parametrize("key, value, words", EDITS, ids=[f"{k}={v}" for k, v, _ in EDITS])
@pytest.mark.parametrize("kind", ["safetensors", "pt"])
def test_an_edited_record_value_is_one_line_naming_the_file_and_the_key(digits_export, tmp_path, capsys, kind, key,
                                                                         value, words):
    if kind == "safetensors":
        weights = tmp_path / "st"
        weights.mkdir()
        (weights / "model.safetensors").write_bytes((digits_export / "st" / "model.safetensors").read_bytes())
        config = json.loads((digits_export / "st" / "config.json").read_text())
        (weights / "config.json").write_text(json.dumps({**config, key: value}))
        named = weights / "config.json" if key != "image_size" or value == 28 else weights
    else:
        weights = named = tmp_path / "edited.pt"
        torch.save({**torch.load(digits_export / "run" / "best.pt", weights_only=True), key: value}, weights)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["predict", str(weights), str(digits_export / "digit.png"), "--topk", "10"]) == 2
    err = one_line_error(capsys)
    assert err.startswith("convolab predict: error: ") and f"{named}: {words}" in err, err
    assert "the file was edited or damaged" in err
    assert main(["evaluate", str(weights), "--output", str(tmp_path / "ev")]) == 2
    assert f"{named}: {words}" in one_line_error(capsys)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written


def test_a_lone_safetensors_file_beside_a_runs_config_is_read_by_its_own_header(digits_export, tmp_path, capsys):
    other = tmp_path / "other-run"  # another run's folder: its config.json is a training run's
    other.mkdir()
    (other / "config.json").write_bytes((digits_export / "run" / "config.json").read_bytes())
    lone = other / "digits.safetensors"
    lone.write_bytes((digits_export / "st" / "model.safetensors").read_bytes())
    image = str(digits_export / "digit.png")
    assert main(["predict", str(digits_export / "st"), image]) == 0
    expected = capsys.readouterr().out
    assert main(["predict", str(lone), image]) == 0
    assert capsys.readouterr().out == expected
    # a safetensors config.json of its own (the marker) is still what is read, and checked
    config = json.loads((digits_export / "st" / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "std": [0]}))
    assert main(["predict", str(lone), image]) == 2
    assert f"{other / 'config.json'}: its 'std' is [0]" in one_line_error(capsys)
