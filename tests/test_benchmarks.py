"""The benchmarks compare like with like: each side does the same work (fast checks, no timing)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from convolab.cli import build_parser
from convolab.cli._options import config_from_args
from convolab.training.optim import lr_factor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import augment_policies  # noqa: E402
import gpu  # noqa: E402
import learning_parity  # noqa: E402
import stream_delivery  # noqa: E402
import train_throughput as tt  # noqa: E402


def test_stream_delivery_mirrors_on_both_sides(tmp_path):
    """convolab's streamed side flips half its crops, as torchvision's RandomHorizontalFlip does (it once
    built its loader before asking for flips, so its workers never mirrored)."""
    stream_delivery.write_photos(tmp_path, 16, (40, 60))
    _, loader, _ = stream_delivery.convolab_loader(tmp_path, batch=4, workers=0)
    flipped = loader.dataset
    assert flipped.flip and flipped.random_crop and flipped.size == stream_delivery.SIZE
    plain = type(flipped)(flipped.split, flipped.size, flipped.mode, True, True, flipped.min_scale,
                          flipped.seed, flip=False)
    mirrored = same = 0
    for i in range(len(flipped)):  # the same crop (same random stream), mirrored or not
        a, b = flipped[(i, 0)][0], plain[(i, 0)][0]
        mirrored += torch.equal(a, b.flip(-1)) and not torch.equal(a, b)
        same += torch.equal(a, b)
    assert mirrored + same == len(flipped) and mirrored >= 3 and same >= 3, (mirrored, same)

    steps = stream_delivery.imagefolder_loader(tmp_path, batch=4, workers=0).dataset.transform.transforms
    kinds = [type(t) for t in steps]
    assert kinds == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert steps[0].size == (stream_delivery.SIZE, stream_delivery.SIZE) and steps[1].p == 0.5


def test_train_throughput_convolab_side_trains_as_the_peers(tmp_path):
    """The `convolab train` command of train_throughput.py asks for the peers' batch, optimizer, learning
    rate, momentum, schedule, augmentation and precision, and the peers' loaders crop and flip alike."""
    cmd = tt.side_convolab("resnet20", tmp_path, 3, tmp_path / "run")
    args = build_parser().parse_args(cmd[3:])  # after `python -m convolab`
    config = config_from_args(args, args.model)
    assert (config.batch_size, config.optimizer, config.lr, config.momentum, config.weight_decay) == \
        (tt.BATCH, "sgd", tt.LR, tt.MOMENTUM, 0.0)
    assert (config.schedule, config.warmup_epochs, config.augment, config.amp, config.epochs) == \
        ("constant", 0.0, "crop-flip", "off", 3)
    assert config.threads == tt.THREADS  # as the hand-written loop's (else it follows the machine's load)
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir(parents=True)
    for cls in "ab":
        Image.new("RGB", (32, 32)).save(tmp_path / "train" / cls / "0.jpg")
    steps = tt.imagefolder_loader(tmp_path, 0, persistent=False).dataset.transform.transforms
    assert [type(t) for t in steps] == [T.RandomCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert steps[0].padding == 4 and steps[1].p == 0.5  # convolab's crop-flip: padding 32/8, p 1/2


def test_augment_policies_sides_do_what_the_table_says_of_them():
    """convolab's batched policies and torchvision's per-image loop give each image its own draw; torchvision
    called once on a batch gives one draw to all (the `distinct/64` column the benchmark prints)."""
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    for policy in augment_policies.POLICIES:
        per_image, batched = augment_policies.torchvision_sides(policy)
        ours = augment_policies.distinct_outputs(lambda b, p=policy: augment_policies.auto_augment(b, p, generator),
                                                 image)
        assert ours >= 10 and augment_policies.distinct_outputs(per_image, image) >= 10
        assert augment_policies.distinct_outputs(batched, image) == 1


def test_every_name_a_benchmark_imports_exists():
    """Imports inside a benchmark's functions run only when that part runs (on a GPU, say): each `from M import
    N` of a sibling script or of convolab must name something M has (gpu.py once imported a class that
    train_throughput.py no longer defined, found only by its dry run)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    siblings = {p.stem for p in folder.glob("*.py")}
    checked = 0
    for script in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level and (
                    node.module in siblings or node.module.split(".")[0] == "convolab"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                        f"{script.name}: from {node.module} import {alias.name}"
                    checked += 1
    assert checked > 20


def test_learning_parity_sides_share_the_schedule_and_the_images(tmp_path):
    """The textbook loop's LambdaLR is the engine's one-cycle schedule step for step, and both sides read the
    same files: the first N of each class of each split, copied byte for byte from the tar."""
    for total, warmup in ((390, 78), (40, 20), (10, 0)):
        for step in range(total):
            assert learning_parity.lr_factor(step, total, warmup) == pytest.approx(
                lr_factor(step, total, "onecycle", warmup), abs=1e-12)
    source = tmp_path / "src"
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("cat", "dog"):
            (source / "cifar10" / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(source / "cifar10" / split / cls / f"{i:04d}.jpg")
    tar = tmp_path / "c.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(source / "cifar10", arcname="cifar10")
    root = learning_parity.write_subset(tar, tmp_path / "subset", train_per_class=3, test_per_class=None)
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    assert got == [f"{s}/{c}/{i:04d}.jpg" for s, n in (("test", 2), ("train", 3)) for c in ("cat", "dog")
                   for i in range(n)]
    assert (root / "train/dog/0002.jpg").read_bytes() == (source / "cifar10/train/dog/0002.jpg").read_bytes()


def test_gpu_script_parts_stop_at_their_limit_even_when_silent(tmp_path):
    """A part that hangs without printing is killed at its limit (device minutes are few); before, the limit was
    checked only when a line came, and a silent throughput part ran 314 s against its 165."""
    log = gpu.Log(tmp_path / "gpu.log")
    start = time.perf_counter()
    code, lines = gpu.run_streamed([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                   1.0, log)
    assert code == 124 and [line for _, line in lines if line] == ["up"] and time.perf_counter() - start < 10
    code, lines = gpu.run_streamed([sys.executable, "-c", "print('done'); import time; time.sleep(0.5)"], 30, log)
    # the last entry is the command's end (a command's time counts its teardown after its last line)
    assert code == 0 and lines[-1][1] == "" and lines[-1][0] >= lines[-2][0] + 0.4


PEERS = {"timm", "onnxruntime", "lightning", "onnx"}  # (the peer packages a user may lack)


def test_a_missing_peer_package_is_skipped_and_every_script_but_two_has_quick():
    """The README: a script whose peer package is missing prints `skipped <peer>: ...` and runs the rest (an import
    of a peer at a script's top is inside a `try` that catches ImportError: grad_checkpointing.py's `import timm`
    and inference.py's `import onnxruntime` ended in a traceback); `--quick` gives a shorter run in every script but
    augment_policies.py and gpu.py (grad_checkpointing.py had none)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    quick = set()
    for script in sorted(folder.glob("*.py")):
        tree = ast.parse(script.read_text())
        for node in tree.body:  # (imports inside functions run when the peer's side runs, which says it is skipped)
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not PEERS & {n.split(".")[0] for n in names}, f"{script.name}: unguarded import of {names}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError"
                                                 for h in node.handlers):
                assert any(isinstance(c, ast.Call) and getattr(c.func, "id", "") == "print" and "skipped" in
                           ast.unparse(c) for c in ast.walk(tree)), f"{script.name} says nothing of a missing peer"
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                    node.args[0].value == "--quick":
                quick.add(script.name)
    assert sorted({p.name for p in folder.glob("*.py")} - quick) == ["_common.py", "augment_policies.py", "gpu.py"]


def test_gpu_summary_names_the_device_and_ends_with_ratio_lines(tmp_path, capsys):
    """Each call's figures name the machine (env runs first in every call: `--only throughput` gave "device: None")
    and end with `ratio` lines, as every benchmark does (gpu.py printed none)."""
    results = {"env": {"device": "NVIDIA H100"},
               "throughput": {"models": [{"model": "lenet5 img_size=32", "batch": 512, "textbook": 100.0,
                                          "handwritten": 400.0, "convolab": 380.0}]},
               "throughput-compiled-default": {"models": [{"model": "resnet20", "batch": 512, "handwritten": 100.0,
                                                           "convolab": 99.0}]}}
    gpu.summary(results, gpu.Log(tmp_path / "gpu.log"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("device: NVIDIA H100")
    assert lines[-3:] == ["ratio lenet5-img_size=32-b512-convolab-vs-handwritten 0.95",
                          "ratio lenet5-img_size=32-b512-convolab-vs-textbook 3.80",
                          "ratio resnet20-b512-compiled-default-convolab-vs-handwritten 0.99"]
