"""Training throughput of convolab's engine against (a) the textbook loop and (b) the best loop we
can write by hand with the same tricks, for lenet5, resnet20 and a small Inception net, in one run.

    python benchmarks/train_throughput.py [--quick] [--device auto]

(a) textbook: a torchvision data set of PIL images, DataLoader(shuffle, 2 workers) with per-sample
    transforms (ToTensor, Normalize; RandomCrop and flip for colour), NCHW fp32 eager.
(b) hand-written: the data as one uint8 tensor on the device, batches by indexing, whole-batch
    augmentation, channels-last, the same optimizer - the loop a careful engineer writes in 30 lines.
convolab: `Trainer.fit` with the same model, data, batch size and optimizer.
Each method trains the same epochs of the same images (3, or 1 with --quick); rounds are
interleaved (5, or 2) and the best of each is kept.
Ends with `ratio <what> <value>` lines.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab import create_model  # noqa: E402
from convolab.data import ImageData, Split, load_data  # noqa: E402
from convolab.data.augment import random_crop, random_flip  # noqa: E402
from convolab.training import TrainConfig, Trainer  # noqa: E402


class PILDataset(torch.utils.data.Dataset):
    """What a torchvision data set hands a DataLoader: one PIL image and label at a time."""

    def __init__(self, split: Split, transform):
        from PIL import Image

        arrays = split.images.permute(0, 2, 3, 1).numpy()
        mode = "L" if arrays.shape[-1] == 1 else "RGB"
        self.images = [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in arrays]
        self.labels = split.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def textbook(model_name: str, data: ImageData, batch: int, device: torch.device, colour: bool, epochs: int) -> float:
    import torchvision.transforms as T

    mean, std = data.channel_stats()
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if colour else []
    dataset = PILDataset(data.train, T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)]))
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=2, drop_last=True,
                        persistent_workers=False)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_chans=data.image_shape[0]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):  # each epoch starts its workers, as a DataLoader does by default
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def handwritten(model_name: str, data: ImageData, batch: int, device: torch.device, colour: bool,
                epochs: int) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_chans=data.image_shape[0]).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    mean_, std_ = data.channel_stats()
    mean = torch.tensor(mean_, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std_, device=device).view(1, -1, 1, 1)
    gen = torch.Generator(device=device).manual_seed(1)
    model.train()
    start = time.perf_counter()
    steps = len(labels) // batch
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for _ in range(epochs):
        perm = torch.randperm(len(labels), device=device)
        loss_sum.zero_()
        correct.zero_()
        for b in range(steps):
            idx = perm[b * batch:(b + 1) * batch]
            x = images[idx]
            if colour:  # crops and flips move pixels only: on uint8, a quarter of the bytes of float
                x = random_flip(random_crop(x, 4, gen), gen)
            x = x.float().div_(255).sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)  # the running loss and accuracy any training loop reports
            correct += (logits.detach().argmax(1) == y).sum()
    print(f"    hand-written epoch: loss {loss_sum.item() / (steps * batch):.3f}, "
          f"acc {correct.item() / (steps * batch):.3f}", file=sys.stderr)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * steps * batch / (time.perf_counter() - start)


def convolab_engine(model_name: str, data: ImageData, batch: int, device: torch.device, colour: bool,
                    epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(model=model_name, data=data.name, epochs=epochs, batch_size=batch, optimizer="sgd",
                             lr=0.01, weight_decay=0.0, schedule="constant", warmup_epochs=0,
                             augment="crop-flip" if colour else "none", output=tmp, device=str(device),
                             progress=False, amp="off")
        result = Trainer(config, data=data).fit()
    seconds = sum(row["train_seconds"] for row in result.history)  # training only, as the others
    return sum(row["images_per_second"] * row["train_seconds"] for row in result.history) / seconds


def subset(data: ImageData, n: int) -> ImageData:
    test = data.test.subset(torch.arange(min(256, len(data.test))))
    return ImageData(data.name, data.train.subset(torch.arange(n)), test, data.classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds (a minute or two)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR), help="CIFAR-10 tar for resnet20")
    args = parser.parse_args()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"machine: {machine()}")
    print("peers: (a) textbook torchvision Dataset + DataLoader(2 workers, per-sample ToTensor), "
          "(b) hand-written loop with device-resident uint8 data and batch augmentation")
    rounds, epochs = (2, 1) if args.quick else (5, 3)
    mnist = load_data("mnist5k")
    cases = [("lenet5", mnist, 64, False, 1024 if args.quick else 3968),
             ("inception_mnist", mnist, 64, False, 512 if args.quick else 1984)]
    if Path(args.data).is_file():
        cases.append(("resnet20", load_data(args.data), 128, True, 512 if args.quick else 2048))
    else:
        print(f"skipped resnet20: no CIFAR-10 tar at {args.data}")
    lines = []
    for name, data, batch, colour, n in cases:
        small = subset(data, n)
        best = {"textbook": 0.0, "handwritten": 0.0, "convolab": 0.0}
        for _ in range(rounds):
            for method, fn in (("textbook", textbook), ("handwritten", handwritten), ("convolab", convolab_engine)):
                best[method] = max(best[method], fn(name, small, batch, device, colour, epochs))
        print(f"{name:16s} batch {batch:4d}, {epochs} x {n} images: textbook {best['textbook']:8.0f} img/s  "
              f"hand-written {best['handwritten']:8.0f} img/s  convolab {best['convolab']:8.0f} img/s")
        lines.append(f"ratio {name}-convolab-vs-textbook {best['convolab'] / best['textbook']:.2f}")
        lines.append(f"ratio {name}-convolab-vs-handwritten {best['convolab'] / best['handwritten']:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
