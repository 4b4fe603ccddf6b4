"""Training throughput on folder data (CIFAR-10 JPEGs): convolab's `convolab train` against five peers,
for lenet5, resnet20 and googlenet_small, each side a process of its own, in one run.

    python benchmarks/train_throughput.py [--quick] [--data PATH/cifar10-jpg.tar.gz] [--models ...] [--sides ...]

The same images (a class-balanced subset of the tar's training images, written once as a folder of the
original JPEG files), the same model (convolab's, built by `create_model`), batch, SGD (lr 0.01,
momentum 0.9, no weight decay, constant lr) and precision (fp32, no autocast) on every side; every side on
the CPU. Augmentation: a random 32-px crop of the image padded by 4 and a horizontal flip on every side
but timm, which keeps its own train.py data path: RandomResizedCrop at scale 0.64-1 and a flip. Sides:

- d2l: the textbook loop as d2l writes it (train_ch6 with `d2l.load_data_*` style loaders): ImageFolder,
  DataLoader(shuffle, num_workers=4 = d2l.get_dataloader_workers(), workers restarted each epoch),
  per-sample RandomCrop(32, padding=4)/flip/ToTensor/Normalize, NCHW, torch's threads (one per core;
  --threads), the loss and accuracy read back every step (d2l.Accumulator);
- textbook-best: the same loop at its best: 2 persistent workers, channels-last, nothing read back per step;
  the main process measured at the cores its workers leave and at convolab's thread count (1 and 2 torch
  threads on 2 cores; --loader-threads) and its better setting kept;
- hand-written: the images decoded once into a uint8 tensor (convolab's cache), batches by indexing,
  whole-batch crop/flip, channels-last, one torch thread per core (--threads), no workers: the loop a
  careful engineer writes in 30 lines;
- timm: timm's train.py data path: `timm.data.ImageDataset` + `create_loader` (is_training, its
  RandomResizedCrop at scale 0.64-1 + flip, no colour jitter, 2 persistent workers, no CUDA prefetcher
  on the CPU), `create_optimizer_v2(opt="momentum")` (timm's plain-momentum SGD, as every other side; its
  "sgd" is Nesterov), channels-last as `train.py --channels-last` does, threads as textbook-best (each
  count measured, the better kept);
- lightning: `Trainer.fit` (barebones=True, accelerator cpu, precision 32-true) on the textbook-best
  DataLoader and threads, the LightningModule's step converting its batch to channels-last;
- convolab: the `convolab train --threads 2` command (resident uint8 data, batch augmentation, channels-last,
  no workers: the same 2 cores; its defaults otherwise; --threads as the hand-written loop's, since a
  convolab command left to itself lowers its threads to the cores other processes leave free), which
  also evaluates its 200 test images and writes checkpoints, metrics and curves after each epoch (inside
  its wall time).

Per side: images/s of the training steps (best epoch after the first, which starts the workers and warms
up; convolab: metrics.csv's images_per_second, its device-synchronized clock) and the whole process's
wall time (Python start, imports, data, all epochs: for convolab the whole `convolab train` command).
convolab's image cache is built once before the sides run (its time is printed) and is warm for them.
Ends with `ratio <model>-convolab-vs-<side> <x>` lines (images/s; >1: convolab faster), each against the
side's better thread setting.
The three sides with workers run once per thread count tried: 9 processes a model on 2 cores, not 6.
On a machine other processes load, give --threads 1 (waiting threads spin: every side, d2l's too, then at
one thread).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

SIDES = ("d2l", "textbook-best", "hand-written", "timm", "lightning", "convolab")
MODELS = {"lenet5": {"img_size": 32}, "resnet20": {}, "googlenet_small": {}}
# Training images per model (a tenth of each class), epochs: full and --quick.
IMAGES = {"lenet5": (10000, 2560), "resnet20": (4000, 1280), "googlenet_small": (4000, 1280)}  # >= 10 steps
BATCH, LR, MOMENTUM, TEST_PER_CLASS, WORKERS = 128, 0.01, 0.9, 20, 2
THREADS = os.cpu_count() or 1  # convolab's, d2l's and the hand-written loop's: one per core
# The sides whose main process runs beside WORKERS busy workers: no one thread count is best for them (under
# load, lenet5's textbook-best loop ran at a quarter of the speed at 2 threads than at 1, the threads spinning;
# on the compute-bound models, idle, d2l's loop at 2 threads beat them at 1), so each is measured at every
# count tried and keeps its best.
LOADER_SIDES = ("textbook-best", "timm", "lightning")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's, fixed for every side
DESCRIBE = {
    "d2l": "ImageFolder, DataLoader(num_workers=4, not persistent), per-sample PIL crop/flip/ToTensor/Normalize, "
           "NCHW fp32, torch threads {threads}, loss and accuracy read back each step",
    "textbook-best": "ImageFolder, DataLoader(num_workers=2, persistent), per-sample PIL crop/flip/ToTensor/"
                     "Normalize, channels-last fp32, torch threads {threads}",
    "hand-written": "uint8 tensor in memory (decoded once), batches by indexing, whole-batch crop/flip/normalize, "
                    "channels-last fp32, torch threads {threads}, no workers",
    "timm": "timm ImageDataset + create_loader(num_workers=2, persistent, RRC 0.64-1 + flip, no prefetcher), "
            "create_optimizer_v2(momentum: plain SGD momentum), channels-last fp32, torch threads {threads}",
    "lightning": "lightning {version} Trainer(barebones, cpu, 32-true).fit on DataLoader(num_workers=2, "
                 "persistent, per-sample PIL crop/flip/ToTensor/Normalize), channels-last, torch threads {threads}",
    "convolab": "`convolab train`: uint8 tensor in memory (image cache, warm), batch crop/flip/normalize, "
                "channels-last fp32, torch threads {threads}, no workers; evaluates 200 test images each epoch",
}


# ----- the data ------------------------------------------------------------------------------------
def write_subset(tar_path: Path, root: Path, train: int) -> dict[str, int]:
    """root/train/<class>/*.jpg: the first train/10 of each class of the tar; root/test: 20 of each.
    The files are the tar's own JPEG bytes. Returns the images written per split (fewer than asked
    where the tar holds fewer)."""
    per = {"train": train // 10, "test": TEST_PER_CLASS}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(tar_path, mode="r|*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-3] not in per:
                continue
            key = (parts[-3], parts[-2])
            if taken.get(key, 0) >= per[parts[-3]]:
                continue
            taken[key] = taken.get(key, 0) + 1
            target = root / parts[-3] / parts[-2] / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    return {split: sum(n for (s, _), n in taken.items() if s == split) for split in per}


# ----- the sides (each run in a process of its own: `--run-side`) -------------------------------
def build_model(name: str, channels_last: bool) -> torch.nn.Module:
    from convolab import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=3, **MODELS[name])
    return model.to(memory_format=torch.channels_last) if channels_last else model


def imagefolder_loader(root: Path, workers: int, persistent: bool):
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    return DataLoader(tvd.ImageFolder(str(root / "train"), transform), batch_size=BATCH, shuffle=True,
                      num_workers=workers, persistent_workers=persistent and workers > 0, drop_last=True)


def loader_epochs(model: torch.nn.Module, loader, optimizer, epochs: int, channels_last: bool,
                  read_back: bool) -> list[float]:
    """The textbook loop; `read_back`: d2l's Accumulator, which turns the loss and accuracy into floats each step."""
    rates = []
    model.train()
    for _ in range(epochs):
        start, seen, metric = time.perf_counter(), 0, [0.0, 0.0]
        for x, y in loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            if read_back:
                with torch.no_grad():
                    metric[0] += float(loss * x.shape[0])
                    metric[1] += float((logits.argmax(1) == y).sum())
            seen += len(y)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def side_d2l(name: str, root: Path, epochs: int) -> list[float]:
    model = build_model(name, channels_last=False)
    return loader_epochs(model, imagefolder_loader(root, 4, persistent=False), sgd(model), epochs, False, True)


def side_textbook_best(name: str, root: Path, epochs: int) -> list[float]:
    model = build_model(name, channels_last=True)
    return loader_epochs(model, imagefolder_loader(root, WORKERS, persistent=True), sgd(model), epochs, True, False)


def side_handwritten(name: str, root: Path, epochs: int) -> list[float]:
    from convolab.data.augment import random_crop, random_flip
    from convolab.data.folder import load_image_folder

    data = load_image_folder(root)  # decoded once (the warm cache)
    model = build_model(name, channels_last=True)
    optimizer = sgd(model)
    images, labels = data.train.images, data.train.labels
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(1)
    steps, rates = len(labels) // BATCH, []
    model.train()
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(labels))
        for b in range(steps):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            x = random_flip(random_crop(images[idx], 4, gen), gen)  # on uint8: a quarter of float's bytes
            x = x.float().div_(255).sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(steps * BATCH / (time.perf_counter() - start))
    return rates


def side_timm(name: str, root: Path, epochs: int) -> list[float]:
    from timm.data import ImageDataset, create_loader
    from timm.optim import create_optimizer_v2

    model = build_model(name, channels_last=True)
    loader = create_loader(ImageDataset(str(root / "train")), input_size=(3, 32, 32), batch_size=BATCH,
                           is_training=True, scale=(0.64, 1.0), hflip=0.5, color_jitter=0.0, mean=MEAN, std=STD,
                           num_workers=WORKERS, use_prefetcher=False, persistent_workers=True,
                           device=torch.device("cpu"))
    # "momentum": timm's plain-momentum SGD, as every other side; its "sgd" (and "nesterov") is Nesterov.
    optimizer = create_optimizer_v2(model, opt="momentum", lr=LR, momentum=MOMENTUM, weight_decay=0.0)
    return loader_epochs(model, loader, optimizer, epochs, True, False)


def side_lightning(name: str, root: Path, epochs: int) -> list[float]:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = build_model(name, channels_last=True)

        def training_step(self, batch, _index):
            x, y = batch
            return F.cross_entropy(self.model(x.contiguous(memory_format=torch.channels_last)), y)

        def configure_optimizers(self):
            return sgd(self.model)

    class EpochClock(L.Callback):
        def __init__(self):
            self.rates: list[float] = []

        def on_train_epoch_start(self, trainer, module):
            self.start, self.seen = time.perf_counter(), 0

        def on_train_batch_end(self, trainer, module, outputs, batch, index):
            self.seen += len(batch[1])

        def on_train_epoch_end(self, trainer, module):
            self.rates.append(self.seen / (time.perf_counter() - self.start))

    clock = EpochClock()
    trainer = L.Trainer(accelerator="cpu", devices=1, precision="32-true", max_epochs=epochs, barebones=True,
                        callbacks=[clock])
    trainer.fit(Module(), imagefolder_loader(root, WORKERS, persistent=True))
    return clock.rates


def side_convolab(name: str, root: Path, epochs: int, run_dir: Path, threads: int = THREADS) -> list[str]:
    """The `convolab train` command line (run as its own process; its figures are read from metrics.csv).
    --threads is given: without it a convolab command lowers its threads to the cores that other running
    processes leave free, and the hand-written side would not run at the same count."""
    options = [f"--model-option={k}={v}" for k, v in MODELS[name].items()] + ["--threads", str(threads)]
    return [sys.executable, "-m", "convolab", "train", name, "--data", str(root), "--epochs", str(epochs),
            "--batch-size", str(BATCH), "--optimizer", "sgd", "--lr", str(LR), "--momentum", str(MOMENTUM),
            "--weight-decay", "0", "--schedule", "constant", "--warmup-epochs", "0", "--augment", "crop-flip",
            "--amp", "off", "--device", "cpu", "--no-progress", "--output", str(run_dir), *options]


RUNNERS = {"d2l": side_d2l, "textbook-best": side_textbook_best, "hand-written": side_handwritten,
           "timm": side_timm, "lightning": side_lightning}
NEEDS = {"timm": "timm", "lightning": "lightning"}


# ----- the driver ----------------------------------------------------------------------------------
def run_side(side: str, name: str, root: Path, epochs: int, tmp: Path, env: dict, threads: int,
             round_: int) -> tuple[list[float], float]:
    """(images/s of each epoch, the process's wall seconds); `threads`: the side's torch threads."""
    if side == "convolab":
        run_dir = tmp / f"run-{name}-{round_}"  # a folder per round: `convolab train` refuses one holding a run
        cmd = side_convolab(name, root, epochs, run_dir, threads)
    else:
        cmd = [sys.executable, __file__, "--run-side", side, "--models", name, "--folder", str(root),
               "--epochs", str(epochs), "--side-threads", str(threads)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{side} on {name} failed ({done.returncode}): {' | '.join(tail)}")
    if side == "convolab":
        with open(run_dir / "metrics.csv", newline="") as f:
            rates = [float(row["images_per_second"]) for row in csv.DictReader(f)]
    else:
        rates = json.loads(done.stdout.strip().splitlines()[-1])["rates"]
    return rates, wall


def missing(side: str) -> str | None:
    import importlib.util

    package = NEEDS.get(side)
    if package and importlib.util.find_spec(package) is None:
        return f"skipped {side}: the {package} package is not installed (pip install 'convolab[bench]')"
    return None


def thread_settings(args: argparse.Namespace) -> dict[str, list[int]]:
    """The torch thread counts each side is measured at: one for the sides without workers (and d2l's, which
    keeps torch's default), every count tried for the sides with workers."""
    tried = args.loader_threads or sorted({max(1, args.threads - WORKERS), args.threads})
    return {side: list(tried) if side in LOADER_SIDES else [args.threads] for side in SIDES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images, 2 epochs")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR), help="the CIFAR-10 JPEG tar")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--epochs", type=int, help="epochs per side (default: 3, --quick 2); the first is not timed")
    parser.add_argument("--loader-threads", type=int, nargs="+",
                        help="the torch thread counts to measure the main process of the sides with DataLoader "
                        "workers (textbook-best, timm, lightning) at; each side keeps its best (default: the cores "
                        f"its {WORKERS} workers leave, at least 1, and --threads: "
                        f"{' and '.join(map(str, sorted({max(1, THREADS - WORKERS), THREADS})))} here)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch threads of convolab (`convolab train --threads`), the hand-written loop and d2l's "
                        "loop (default: one per core, %(default)s)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every side this many times, in turn (A B A B ...), and keep each side's best epoch "
                        "and best wall time: on a machine whose speed drifts, no side gets only the slow minutes "
                        "(default: %(default)s)")
    parser.add_argument("--run-side", choices=list(RUNNERS), help=argparse.SUPPRESS)  # one side, in this process
    parser.add_argument("--side-threads", type=int, help=argparse.SUPPRESS)  # its torch threads
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 3)
    if args.run_side:
        torch.set_num_threads(args.side_threads)
        rates = RUNNERS[args.run_side](args.models[0], Path(args.folder), epochs)
        print(json.dumps({"rates": rates}))
        return
    if not Path(args.data).is_file():
        raise SystemExit(f"skipped: no CIFAR-10 tar at {args.data} (pass --data PATH)")
    for flag, counts in (("--threads", [args.threads]), ("--loader-threads", args.loader_threads or [])):
        if any(n < 1 for n in counts):
            raise SystemExit(f"{flag} must be >= 1, got {' '.join(map(str, counts))}")
    settings = thread_settings(args)
    started = time.perf_counter()
    print(f"machine: {machine()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"every side: convolab's model, batch {BATCH}, SGD lr {LR} momentum {MOMENTUM} (no weight decay, constant "
          f"lr), crop (padded by 4; timm: its RandomResizedCrop at scale 0.64-1) + flip, fp32 on the CPU, "
          f"{epochs} epochs (images/s: best epoch after the first)"
          + (f"; {args.rounds} rounds in turn, each side's best" if args.rounds > 1 else ""))
    versions = {"lightning": _version("lightning"), "timm": _version("timm")}
    sides = []
    for side in args.sides:
        reason = missing(side)
        if reason:  # "skipped <side>: ... not installed", no description of a side that will not run
            print(f"  {reason}")
            continue
        sides.append(side)
        counts = settings[side]
        threads = " and ".join(map(str, counts)) + (" (each measured, the better kept)" if len(counts) > 1 else "")
        print(f"  {side}: {DESCRIBE[side].format(threads=threads, version=versions['lightning'])}"
              + (f" (timm {versions['timm']})" if side == "timm" else ""))
    results, lines = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = os.environ | {"CONVOLAB_CACHE": str(tmp / "cache")}
        builds: dict[Path, float] = {}  # the image cache's build time, of each subset
        for name in args.models:
            n = IMAGES[name][1 if args.quick else 0]
            root = tmp / f"cifar10-{n}"
            if root.is_dir():
                print(f"{name}: the same images as above", flush=True)
            else:
                written = write_subset(Path(args.data), root, n)
                start = time.perf_counter()  # convolab's image cache, once, outside the sides' timing
                subprocess.run([sys.executable, "-c", "import sys; from convolab.data.folder import "
                                "load_image_folder; load_image_folder(sys.argv[1])", str(root)], env=env, check=True)
                short = f" (asked for {n}: the tar holds fewer)" if written["train"] < n else ""
                builds[root] = time.perf_counter() - start
                print(f"{name}: {written['train']} training images{short} + {written['test']} test; convolab's "
                      f"image cache built in {builds[root]:.1f} s (a process), once", flush=True)
            # (side, threads) -> (best images/s, best wall s) over the rounds
            measured: dict[tuple[str, int], tuple[float, float]] = {}
            for round_ in range(args.rounds):
                for side in sides:
                    for threads in settings[side]:
                        rates, wall = run_side(side, name, root, epochs, tmp, env, threads, round_)
                        best, key = max(rates[1:] or rates), (side, threads)
                        old = measured.get(key, (best, wall))
                        measured[key] = (max(best, old[0]), min(wall, old[1]))
                        which = f"   round {round_ + 1}" if args.rounds > 1 else ""
                        print(f"  {name:16s} {side:14s} {threads} thr {best:8.0f} img/s   process {wall:6.1f} s   "
                              f"(epochs: {', '.join(f'{r:.0f}' for r in rates)}){which}", flush=True)
            row: dict[str, tuple[int, float, float]] = {}  # side -> (kept threads, images/s, wall s)
            for side in sides:
                tried = {t: measured[(side, t)] for t in settings[side]}
                kept = max(tried, key=lambda t: tried[t][0])
                row[side] = (kept, *tried[kept])
                if len(tried) > 1:
                    print(f"  {name:16s} {side:14s} kept {kept} threads: "
                          + ", ".join(f"{t} thr {ips:.0f} img/s" for t, (ips, _) in tried.items()), flush=True)
            results.append((name, row, builds[root]))
    print()
    print(f"{'model':<16}{'side':<15}{'threads':>8}{'images/s':>10}{'wall s':>9}{'convolab x':>12}{'wall ratio':>12}"
          f"{'cold ratio':>12}")
    for name, row, build in results:
        ours = row.get("convolab")
        for side, (threads, ips, wall) in row.items():
            versus = f"{ours[1] / ips:11.2f}x" if ours else ""
            walls = f"{wall / ours[2]:11.2f}x" if ours else ""
            # (the sides that decode the JPEGs in their own process, against convolab's command plus its cache build)
            cold = f"{wall / (ours[2] + build):11.2f}x" if ours and side not in ("convolab", "hand-written") else ""
            print(f"{name:<16}{side:<15}{threads:>8}{ips:>10.0f}{wall:>9.1f}{versus:>12}{walls:>12}{cold:>12}")
            if ours and side != "convolab":
                lines.append(f"ratio {name}-convolab-vs-{side} {ours[1] / ips:.2f} (wall: {side} {wall:.1f} s at "
                             f"{threads} threads, convolab {ours[2]:.1f} s" + (f", {ours[2] + build:.1f} s with its "
                                                                              "cache build)" if cold else ")"))
    print("(threads: the side's torch threads, its best where more were tried; convolab x: convolab's images/s over "
          "the side's; wall ratio: the side's process time over convolab's command, whose image cache was built "
          "before it; cold ratio: over convolab's command plus that build, for the sides that decode the JPEGs in "
          "their own process; the hand-written loop reads convolab's cache as convolab does)")
    print("\n".join(lines))
    print(f"total {time.perf_counter() - started:.0f} s")


def _version(package: str) -> str:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return "not installed"


if __name__ == "__main__":
    main()
