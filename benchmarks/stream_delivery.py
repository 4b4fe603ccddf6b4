"""Streaming large images: convolab's streamed path against torchvision ImageFolder + DataLoader,
both with 2 worker processes, delivering normalized 224 x 224 training batches (random-resized
crop, horizontal flip) from a folder of photo-sized JPEGs.

    python benchmarks/stream_delivery.py [--quick] [--images N] [--sizes MIN,MAX] [--workers 2]

The photos are real CIFAR-10 images from the shared tar (else the embedded MNIST digits), enlarged
to random sizes between MIN and MAX pixels a side and saved as JPEG (quality 90): the file sizes and
decoding cost of ImageNet-like photographs, with real image content. Writing them is not timed.

- convolab: `StreamingImageData` workers decode each file straight to its 224 px crop (one resample,
  JPEG DCT-domain downscaling when the crop allows) and return uint8; flip and normalization run
  on the whole batch in the main process (`BatchTransform`), as the training engine does.
- torchvision: `ImageFolder` with `RandomResizedCrop(224)`, `RandomHorizontalFlip`, `ToTensor`,
  `Normalize` in the workers, the torchvision ImageNet reference recipe.

Each side runs a first epoch (workers start, page cache warms) and then timed epochs; the figure is
the best images/s of the timed epochs. Ends with `ratio <what> <value>` lines.
"""
from __future__ import annotations

import argparse
import random
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab.data.augment import AugmentConfig, BatchTransform  # noqa: E402
from convolab.data.folder import load_image_folder  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 224


def source_images(count: int) -> tuple[list[np.ndarray], list[int]]:
    """`count` real images (HWC uint8 RGB) and labels: CIFAR-10 from the shared tar, else MNIST digits."""
    from PIL import Image

    if SHARED_CIFAR_TAR.is_file():
        # The tar is sorted by class: take the first count/10 of each class (the first `count` would all
        # be airplanes, and a folder of one class is refused).
        images, labels, classes, taken = [], [], {}, Counter()
        per_class = -(-count // 10)
        with tarfile.open(SHARED_CIFAR_TAR, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and "/train/" in member.name and member.name.endswith((".jpg", ".png")):
                    cls = classes.setdefault(member.name.split("/")[-2], len(classes))
                    if taken[cls] >= per_class:
                        continue
                    taken[cls] += 1
                    with Image.open(tar.extractfile(member)) as img:
                        images.append(np.asarray(img.convert("RGB")))
                    labels.append(cls)
                    if len(images) == count:
                        break
        return images, labels
    from convolab.data import load_mnist5k

    data = load_mnist5k()
    idx = np.linspace(0, len(data.train) - 1, count).round().astype(int)
    return ([np.repeat(data.train.images[i, 0].numpy()[..., None], 3, 2) for i in idx],
            [int(data.train.labels[i]) for i in idx])


def write_photos(root: Path, count: int, sizes: tuple[int, int], seed: int = 0) -> int:
    from PIL import Image

    images, labels = source_images(count)
    rng = random.Random(seed)
    total = 0
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        w, h = rng.randint(*sizes), rng.randint(*sizes)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(image).resize((w, h), Image.BICUBIC).save(path, quality=90)
        total += path.stat().st_size
    # A one-image test split, so that the folder has the train/test layout both readers expect.
    (root / "test" / f"class{labels[0]}").mkdir(parents=True, exist_ok=True)
    Image.fromarray(images[0]).resize(sizes, Image.BICUBIC).save(root / "test" / f"class{labels[0]}" / "0.jpg")
    return total


def convolab_loader(root: Path, batch: int, workers: int):
    """convolab's streamed training loader: random-resized crops at SIZE, mirrored at random by the workers
    (as the engine asks when it streams). Configured before `train_loader`, which hands the workers a data
    set built from the settings of that moment."""
    data = load_image_folder(root, loader="stream", workers=workers)
    data.configure(SIZE, random_crop=True, flip=True)
    loader, sampler = data.train_loader(batch, seed=0)
    return data, loader, sampler


def convolab_epochs(root: Path, batch: int, workers: int, epochs: int) -> list[float]:
    data, loader, sampler = convolab_loader(root, batch, workers)
    transform = BatchTransform(3, (SIZE, SIZE), MEAN, STD, AugmentConfig())  # normalization (flips: done)
    generator = torch.Generator().manual_seed(0)
    rates = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start, seen = time.perf_counter(), 0
        for images, _, _ in data.batches(loader, data.train):
            x = transform(images, train=True, generator=generator)
            seen += len(x)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def imagefolder_loader(root: Path, batch: int, workers: int):
    """torchvision's ImageNet reference recipe: per-sample crop, flip, ToTensor, Normalize in the workers."""
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    dataset = tvd.ImageFolder(str(root / "train"), T.Compose([
        T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]))
    return DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0)


def imagefolder_epochs(root: Path, batch: int, workers: int, epochs: int) -> list[float]:
    loader = imagefolder_loader(root, batch, workers)
    rates = []
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, _ in loader:
            seen += len(x)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="800 photos, 2 timed epochs")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--sizes", default="300,600", help="MIN,MAX pixels a side (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the first")
    args = parser.parse_args()
    count = 800 if args.quick else args.images
    timed = 2 if args.quick else args.epochs
    sizes = tuple(int(v) for v in args.sizes.split(","))
    torch.set_num_threads(1)  # the main process: the workers do the decoding on the other cores
    print(f"machine: {machine()}")
    print(f"peer: torchvision ImageFolder + DataLoader(batch {args.batch_size}, shuffle, num_workers={args.workers}, "
          f"persistent workers; per sample in the workers: RandomResizedCrop({SIZE}) + RandomHorizontalFlip + "
          "ToTensor + Normalize; float32 NCHW batches out)")
    print(f"ours: convolab streamed, {args.workers} persistent workers decode each file to its random-resized "
          f"{SIZE} px crop and mirror half of them (uint8 out); the main process (1 torch thread) converts and "
          "normalizes the whole batch to float32 NCHW")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        total = write_photos(root, count, sizes)
        source = "CIFAR-10 train images" if SHARED_CIFAR_TAR.is_file() else "MNIST digits"
        print(f"data: {count} {source} as JPEG photos of {sizes[0]}-{sizes[1]} px a side, "
              f"{total / count / 1024:.0f} KiB each on average")
        ours = convolab_epochs(root, args.batch_size, args.workers, timed + 1)
        theirs = imagefolder_epochs(root, args.batch_size, args.workers, timed + 1)
    print(f"convolab streamed: epochs at {', '.join(f'{v:,.0f}' for v in ours)} images/s")
    print(f"ImageFolder + DataLoader: epochs at {', '.join(f'{v:,.0f}' for v in theirs)} images/s")
    print(f"ratio streamed-vs-imagefolder-{sizes[0]}-{sizes[1]}px {max(ours[1:]) / max(theirs[1:]):.2f}")


if __name__ == "__main__":
    main()
