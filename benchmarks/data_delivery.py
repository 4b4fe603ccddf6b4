"""Data delivery from the CIFAR-10 JPEG tar: convolab's cached uint8 path against two peers, in images
per second per epoch (best epoch after the first on every side), and the one-time cost of each side's
decoding.

    python benchmarks/data_delivery.py [--quick] [--data PATH_TO_TAR]

Every side delivers normalized float32 NCHW batches of 256 training images in a shuffled order:
- convolab: `load_image_folder` decodes the tar once into a uint8 N x C x H x W tensor (cached on disk); a
  batch is an index into it, converted and normalized by `BatchTransform` (float(), then div_, sub_, div_
  in place; main process, torch's threads);
- decode-once tensor: what a careful user writes after torchvision's CIFAR10 class, at its best: all
  images decoded once with PIL into one uint8 array, permuted once to N x C x H x W (contiguous); a batch
  is an index, then float() and the same in-place divide and normalize (main process, torch's threads);
- ImageFolder + DataLoader(2 workers, persistent, started before the timing by a first epoch):
  per-sample PIL decode, ToTensor, Normalize in the workers (the tar is unpacked beforehand).
The sides' epochs are timed in turns (epoch 1 of each side, then epoch 2 of each...). The one-time cost
compared: convolab's cache build (every image of the tar, train and test, decoded straight from it)
against decode-once's extraction of the whole tar plus its decode of the training images.
Ends with `ratio <what> <value>` lines.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

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


def decode_once(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CIFAR10 decoding, from image files: one uint8 array, made N x C x H x W once (a batch then
    needs no permute and is contiguous), and the labels."""
    from PIL import Image

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())]
    arrays = []
    for f, _ in files:
        with Image.open(f) as img:
            arrays.append(np.asarray(img.convert("RGB")))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([c for _, c in files])


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

        start = time.perf_counter()
        with tarfile.open(tar_path) as tar:
            tar.extractall(f"{tmp}/unpacked", filter="data")
        extract = time.perf_counter() - start
        train_root = train_folder(Path(f"{tmp}/unpacked"), tar_path)
        start = time.perf_counter()
        images, labels = decode_once(train_root)
        decode = time.perf_counter() - start
        print(f"decode-once tensor: the whole tar extracted in {extract:.1f} s, then its {len(labels)} training "
              f"images decoded in {decode:.1f} s (one process)", flush=True)

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
          f"straight from it, {build:.1f} s; decode-once extracts the whole tar, {extract:.1f} s, then decodes its "
          f"{len(labels)} training images, {decode:.1f} s)")
    print("ratio cache-build-all-from-tar-seconds-vs-extract-all-and-decode-train-seconds "
          f"{build / (extract + decode):.2f}")
    print(f"ratio cache-build-seconds-vs-one-imagefolder-epoch {build / (len(data.train) / best_theirs):.2f}")


if __name__ == "__main__":
    main()
