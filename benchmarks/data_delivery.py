"""Data delivery from the CIFAR-10 JPEG tar: convolab's cached uint8 path against two peers, in images
per second per epoch (best epoch after the first on every side), and the one-time cost of each side's
decoding.

    python benchmarks/data_delivery.py [--quick] [--data PATH_TO_TAR]

Every side delivers normalized float32 NCHW batches of 256 training images in a shuffled order:
- convolab: `load_image_folder` decodes the tar once into a uint8 N x C x H x W tensor (cached on disk); a
  batch is an index into it, converted and normalized by `BatchTransform` (float(), then div_, sub_, div_
  in place; main process, torch's threads);
- decode-once tensor: what a careful user writes after torchvision's CIFAR10 class, at its best: every
  image read straight from the tar (no unpacking) and decoded once with PIL, in a pool of as many processes
  as convolab's cache build takes, into one uint8 array, permuted once to N x C x H x W (contiguous); a
  batch is an index, then float() and the same in-place divide and normalize (main process, torch's
  threads);
- ImageFolder + DataLoader(2 workers, persistent, started before the timing by a first epoch):
  per-sample PIL decode, ToTensor, Normalize in the workers (the tar is unpacked beforehand).
The sides' epochs are timed in turns (epoch 1 of each side, then epoch 2 of each...). The one-time cost
compared, of like work: convolab's cache build (every image of the tar, train and test, decoded straight
from it, min(8, cores) processes) against decode-once's decode of every image straight from the tar with
the same number of processes; ImageFolder's unpacking of the tar is timed and printed too.
Ends with `ratio <what> <value>` lines.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab._platform import usable_cores  # noqa: E402
from convolab.data.augment import AugmentConfig, BatchTransform  # noqa: E402
from convolab.data.folder import load_image_folder  # noqa: E402
from convolab.errors import ConvolabError  # noqa: E402

BATCH = 256
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def imagefolder_epoch(loader) -> float:
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    return seen / (time.perf_counter() - start)


def convolab_epoch(images: torch.Tensor, labels: torch.Tensor, transform: BatchTransform, epoch: int) -> float:
    start = time.perf_counter()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
    seen = 0
    for b in range(0, len(perm), BATCH):
        idx = perm[b:b + BATCH]
        transform(images[idx])
        seen += len(idx)
    return seen / (time.perf_counter() - start)


def decode_bytes(data: bytes) -> np.ndarray:
    """One image file's bytes -> its H x W x 3 uint8 array (in a pool's process)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def decode_once(tar_path: Path, processes: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """torchvision's CIFAR10 decoding at its best, from the tar of image files: each member read in one pass in this
    process (a .tar.gz decompresses as it is read) and decoded by a pool of `processes`; the training images as
    one uint8 array, made N x C x H x W once (a batch then needs no permute and is contiguous), their labels, and
    how many images were decoded (train and test)."""
    members = []  # (split, class, bytes)
    with tarfile.open(tar_path) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")) and len(parts) >= 3:
                members.append((parts[-3], parts[-2], tar.extractfile(member).read()))
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        arrays = pool.map(decode_bytes, [m[2] for m in members], chunksize=256)
    classes = sorted({m[1] for m in members if m[0] == "train"})
    train = [i for i, m in enumerate(members) if m[0] == "train"]
    images = torch.from_numpy(np.stack([arrays[i] for i in train])).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([classes.index(members[i][1]) for i in train]), len(arrays)


def decode_once_epoch(images: torch.Tensor, labels: torch.Tensor, epoch: int) -> float:
    """The loop a careful user writes over such a tensor: index, float, normalize in place."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    start = time.perf_counter()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
    seen = 0
    for b in range(0, len(perm), BATCH):
        idx = perm[b:b + BATCH]
        x = images[idx].float().div_(255).sub_(mean).div_(std)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def train_folder(unpacked: Path, tar_path: Path) -> Path:
    """The tar's train/ folder: at its top level or inside one wrapping folder, as `load_image_folder` reads it."""
    found = sorted(p for p in (unpacked / "train", *unpacked.glob("*/train")) if p.is_dir())
    if not found:
        raise SystemExit(f"{tar_path} has no train/ folder at its top level or inside one folder "
                         "(give --data a tar of train/<class>/*.jpg and test/<class>/*.jpg)")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ImageFolder on a 10,000-image subset")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR))
    parser.add_argument("--threads", type=int, help="torch threads of the main process (convolab's and the "
                        "decode-once side; default: torch's, one per core; 1 on a machine other jobs load)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tar_path = Path(args.data)
    if not tar_path.is_file():
        raise SystemExit(f"skipped: no CIFAR-10 tar at {tar_path}")
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Subset

    print(f"machine: {machine()}")
    print(f"convolab and decode-once: main process, {torch.get_num_threads()} torch threads, uint8 NCHW in "
          "memory, float() then in-place divide and normalize, float32 NCHW out; ImageFolder: DataLoader(batch 256, "
          "shuffle, num_workers=2, persistent_workers, "
          "workers started by an untimed first epoch), per-sample PIL decode + ToTensor + Normalize in the workers")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            data = load_image_folder(tar_path, cache_dir=f"{tmp}/cache")
        except ConvolabError as error:  # a tar convolab cannot read: its one line, no traceback
            raise SystemExit(str(error)) from None
        build = time.perf_counter() - start
        start = time.perf_counter()
        data = load_image_folder(tar_path, cache_dir=f"{tmp}/cache")
        reload = time.perf_counter() - start
        print(f"convolab cache: built once in {build:.1f} s ({len(data.train) + len(data.test)} images), "
              f"loaded again in {reload:.2f} s", flush=True)
        transform = BatchTransform(3, (32, 32), MEAN, STD, AugmentConfig())

        processes = min(8, usable_cores())
        start = time.perf_counter()
        images, labels, decoded = decode_once(tar_path, processes)
        decode = time.perf_counter() - start
        print(f"decode-once tensor: all {decoded} images decoded straight from the tar in {decode:.1f} s "
              f"({processes} processes)", flush=True)
        start = time.perf_counter()
        with tarfile.open(tar_path) as tar:
            tar.extractall(f"{tmp}/unpacked", filter="data")
        extract = time.perf_counter() - start
        train_root = train_folder(Path(f"{tmp}/unpacked"), tar_path)
        print(f"ImageFolder: the tar unpacked in {extract:.1f} s", flush=True)

        dataset = tvd.ImageFolder(str(train_root), T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))
        if args.quick:
            dataset = Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:10000])
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True)
        # the sides take turns, epoch by epoch (epoch 1 of each, then epoch 2 of each...), so that a load spike
        # does not land on one side only; ImageFolder's first epoch starts its workers
        ours, once, theirs = [], [], []
        for e in range(3):
            ours.append(convolab_epoch(data.train.images, data.train.labels, transform, e))
            once.append(decode_once_epoch(images, labels, e))
            if e < (2 if args.quick else 3):
                theirs.append(imagefolder_epoch(loader))
    print(f"convolab cached path: epochs at {', '.join(f'{v:,.0f}' for v in ours)} images/s")
    print(f"decode-once tensor: epochs at {', '.join(f'{v:,.0f}' for v in once)} images/s")
    print(f"ImageFolder + DataLoader: epochs at {', '.join(f'{v:,.0f}' for v in theirs)} images/s "
          f"({len(dataset)} images; the first epoch starts the workers)")
    best_ours, best_once, best_theirs = max(ours[1:]), max(once[1:]), max(theirs[1:])
    print(f"ratio cached-vs-decode-once-tensor {best_ours / best_once:.2f}")
    print(f"ratio cached-vs-imagefolder-after-first-epoch {best_ours / best_theirs:.1f}")
    print(f"(one-time cost: convolab's cache build decodes all {len(data.train) + len(data.test)} images of the tar "
          f"straight from it, {build:.1f} s; decode-once decodes all {decoded} straight from it with as many "
          f"processes, {decode:.1f} s; ImageFolder unpacks the tar, {extract:.1f} s)")
    print(f"ratio cache-build-seconds-vs-decode-once-all-from-tar-seconds {build / decode:.2f}")
    print(f"ratio cache-build-seconds-vs-one-imagefolder-epoch {build / (len(data.train) / best_theirs):.2f}")


if __name__ == "__main__":
    main()
