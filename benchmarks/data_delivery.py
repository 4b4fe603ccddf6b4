"""Data delivery from the CIFAR-10 JPEG tar: convolab's cached uint8 path against torchvision
ImageFolder + DataLoader(num_workers=2), in images per second per epoch after the first, and the
one-time cost of building convolab's cache.

    python benchmarks/data_delivery.py [--quick] [--data PATH_TO_TAR]

Both deliver normalized float batches of 256 training images in a shuffled order; the
ImageFolder side reads the tar unpacked into a temporary folder (unpacking is not timed).
Ends with `ratio <what> <value>` lines.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab.data.augment import AugmentConfig, BatchTransform  # noqa: E402
from convolab.data.folder import load_image_folder  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ImageFolder on a 10,000-image subset")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR))
    args = parser.parse_args()
    tar_path = Path(args.data)
    if not tar_path.is_file():
        raise SystemExit(f"skipped: no CIFAR-10 tar at {tar_path}")
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Subset

    print(f"machine: {machine()}")
    print("peer: torchvision ImageFolder + DataLoader(batch 256, shuffle, num_workers=2, ToTensor + Normalize)")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = load_image_folder(tar_path, cache_dir=f"{tmp}/cache")
        build = time.perf_counter() - start
        start = time.perf_counter()
        data = load_image_folder(tar_path, cache_dir=f"{tmp}/cache")
        reload = time.perf_counter() - start
        print(f"convolab cache: built once in {build:.1f} s ({len(data.train) + len(data.test)} images), "
              f"loaded again in {reload:.2f} s")
        transform = BatchTransform(3, (32, 32), MEAN, STD, AugmentConfig())
        ours = [convolab_epoch(data.train.images, data.train.labels, transform, e) for e in range(3)]

        with tarfile.open(tar_path) as tar:
            tar.extractall(f"{tmp}/unpacked", filter="data")
        train_root = next(Path(f"{tmp}/unpacked").glob("*/train"))
        dataset = tvd.ImageFolder(str(train_root), T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]))
        if args.quick:
            dataset = Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:10000])
        loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=2)
        theirs = [imagefolder_epoch(loader) for _ in range(2)]
    print(f"convolab cached path: epochs at {', '.join(f'{v:,.0f}' for v in ours)} images/s")
    print(f"ImageFolder + DataLoader: epochs at {', '.join(f'{v:,.0f}' for v in theirs)} images/s "
          f"({len(dataset)} images)")
    print(f"ratio cached-vs-imagefolder-after-first-epoch {max(ours[1:]) / theirs[-1]:.1f}")
    print(f"ratio cache-build-seconds-vs-one-imagefolder-epoch {build / (len(data.train) / theirs[-1]):.2f}")


if __name__ == "__main__":
    main()
