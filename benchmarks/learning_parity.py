"""Does `convolab train --recipe fast` learn as well as the textbook PyTorch loop with the same recipe?

    python benchmarks/learning_parity.py [--data PATH/cifar10-jpg.tar.gz] [--quick] [--full] [--seeds 0 1]

Both sides train the same network (convolab's resnet20, the same initialization for a seed) on the
same CIFAR-10 JPEG files, a class-balanced subset of the tar written to a temporary image folder, and
score the same test images. Only the loop differs:

- textbook: written here from PyTorch and torchvision alone, nothing of convolab's training code:
  a Dataset of PIL images decoded from the folder; per-sample RandomCrop(32, padding=4),
  RandomHorizontalFlip, ToTensor, Normalize by the training images' channel mean and std; a
  shuffling DataLoader that drops the last partial batch (as convolab and timm's training loader
  do); SGD with Nesterov momentum, weight decay on conv/linear weights only;
  a per-step linear warm-up then linear decay to zero (LambdaLR); cross-entropy with label
  smoothing; at the end, each test image scored by the mean of its logits and its mirror's;
- convolab: the CLI, `convolab train resnet20 --data FOLDER --recipe fast --epochs E
  --batch-size B --lr LR --seed S` in its own process, its last epoch's test accuracy read from the
  run's metrics.csv.

The recipe's values (nesterov, weight decay 5e-4, 2 warm-up epochs, label smoothing 0.1, crop+flip,
test-time flip) are read from convolab's `fast` recipe and given to both sides; the budget (epochs,
batch, peak lr scaled linearly with the batch as the recipe is) is the script's. Each seed's two
runs differ only in their random draws (data order, crops, flips), so the spread over seeds is the
noise a difference must exceed. On a GPU both sides run bf16 autocast and channels-last, as the
recipe does; on the CPU, fp32.

Default budget (CPU): 5,000 training images (500 a class), 1,000 test images, 10 epochs, batch 128,
lr 0.1, seeds 0 and 1: about 15 minutes on 2 cores. `--quick`: 2,000 images, 4 epochs, one seed.
`--full` (a GPU): all 50,000/10,000 images, 40 epochs, batch 512, lr 0.4, as `--recipe fast` runs.

Ends with `accuracy textbook ...`, `accuracy convolab ...` and `ratio convolab_vs_textbook_accuracy`.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab import create_model  # noqa: E402
from convolab.training.recipes import get_recipe  # noqa: E402

MODEL = "resnet20"


def write_subset(tar_path: Path, root: Path, train_per_class: int | None, test_per_class: int | None) -> Path:
    """The first N JPEGs of each class (by name) of each split of the tar, copied byte for byte to `root`."""
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(tar_path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")),
                         key=lambda m: m.name)
        for member in members:
            *_, split, cls, name = member.name.split("/")
            limit = train_per_class if split == "train" else test_per_class
            if limit is not None and taken.get((split, cls), 0) >= limit:
                continue
            taken[(split, cls)] = taken.get((split, cls), 0) + 1
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(tar.extractfile(member).read())
    return root


class Folder(torch.utils.data.Dataset):
    """An image folder read as torchvision's ImageFolder reads it: classes sorted, PIL images in RGB."""

    def __init__(self, root: Path, transform):
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [(Image.open(f).convert("RGB"), label) for label, cls in enumerate(self.classes)
                      for f in sorted((root / cls).glob("*.jpg"))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        image, label = self.items[i]
        return self.transform(image), label


def lr_factor(step: int, total: int, warmup: int) -> float:
    """The learning rate's share of its peak at `step`: linear warm-up over `warmup` steps, then linear decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1 - (step - warmup) / max(1, total - warmup))


def textbook(root: Path, recipe: dict, epochs: int, batch: int, lr: float, seed: int, device: torch.device) -> float:
    """The recipe written out by hand; returns the last epoch's test accuracy."""
    torch.manual_seed(seed)
    pixels = torch.stack([T.functional.to_tensor(im) for im, _ in Folder(root / "train", None).items])
    mean, std = pixels.mean((0, 2, 3)).tolist(), pixels.std((0, 2, 3)).tolist()
    normalize = [T.ToTensor(), T.Normalize(mean, std)]
    train = Folder(root / "train", T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalize]))
    test = Folder(root / "test", T.Compose(normalize))
    cuda = device.type == "cuda"
    workers = min(8, (os.cpu_count() or 2) - 1) if cuda else 0
    loader = torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=cuda, persistent_workers=workers > 0)
    model = create_model(MODEL, num_classes=len(train.classes), in_chans=3)
    model = model.to(device, memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe["weight_decay"]},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=recipe["momentum"], nesterov=recipe["nesterov"])
    total = epochs * len(loader)
    warmup = min(round(recipe["warmup_epochs"] * len(loader)), total // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, warmup))
    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)

    for _ in range(epochs):
        model.train()
        for x, y in loader:
            x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with autocast():
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=recipe["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    correct = 0
    with torch.no_grad(), autocast():
        for x, y in torch.utils.data.DataLoader(test, batch_size=500):
            x = x.to(device, memory_format=torch.channels_last)
            # (the recipe's tta "auto" flips colour images: CIFAR-10's, as convolab's side resolves it)
            logits = model(x).float() + (model(x.flip(3)).float() if recipe["tta"] in ("flip", "auto") else 0)
            correct += (logits.argmax(1).cpu() == y).sum().item()
    return correct / len(test)


def convolab(root: Path, epochs: int, batch: int, lr: float, seed: int, device: torch.device, tmp: Path) -> float:
    """`convolab train --recipe fast` in its own process; returns the last epoch's test accuracy."""
    run = tmp / f"run-{seed}"
    env = {**os.environ, "CONVOLAB_CACHE": str(tmp / "cache")}
    subprocess.run([sys.executable, "-m", "convolab", "train", MODEL, "--data", str(root), "--recipe", "fast",
                    "--epochs", str(epochs), "--batch-size", str(batch), "--lr", str(lr), "--seed", str(seed),
                    "--device", device.type, "--output", str(run), "--no-progress"], check=True, env=env)
    with open(run / "metrics.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["test_acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR), help="the CIFAR-10 image-folder tar")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 4 epochs, one seed")
    parser.add_argument("--full", action="store_true", help="every image, 40 epochs, batch 512, lr 0.4 (a GPU)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds, each a run of each side (default: 0 1)")
    args = parser.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"skipped: the CIFAR-10 tar is not at {args.data} (pass --data PATH)")
    recipe = get_recipe("fast").values
    if args.full:
        per_class, test_per_class, epochs, batch, lr = None, None, recipe["epochs"], recipe["batch_size"], recipe["lr"]
    elif args.quick:
        per_class, test_per_class, epochs, batch, lr = 200, 50, 4, 128, 0.1
    else:
        per_class, test_per_class, epochs, batch, lr = 500, 100, 10, 128, 0.1
    seeds = args.seeds or ([0] if args.quick else [0, 1])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"machine: {machine()}")
    print(f"{MODEL}, the fast recipe's values {recipe}; budget: {epochs} epochs, batch {batch}, peak lr {lr}, "
          f"{'all' if per_class is None else per_class} training images a class, "
          f"{'all' if test_per_class is None else test_per_class} test images a class, seeds {seeds}, "
          f"device {device}{' (bf16 autocast, channels-last)' if device.type == 'cuda' else ' (fp32)'}", flush=True)
    results: dict[str, list[float]] = {"textbook": [], "convolab": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = write_subset(Path(args.data), tmp / "cifar10", per_class, test_per_class)
        for seed in seeds:
            for side in results:
                start = time.perf_counter()
                acc = (textbook(root, recipe, epochs, batch, lr, seed, device) if side == "textbook"
                       else convolab(root, epochs, batch, lr, seed, device, tmp))
                results[side].append(acc)
                print(f"seed {seed} {side}: test accuracy {acc:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    for side, accs in results.items():
        spread = f" (seeds: {', '.join(f'{a:.4f}' for a in accs)})" if len(accs) > 1 else ""
        print(f"accuracy {side} {statistics.mean(accs):.4f}{spread}")
    print(f"ratio convolab_vs_textbook_accuracy "
          f"{statistics.mean(results['convolab']) / statistics.mean(results['textbook']):.3f}")


if __name__ == "__main__":
    main()
