"""Accuracy in a stated budget: lenet5_modern on mnist5k, the same digits as photographs streamed
from JPEG files, and resnet20 on the CIFAR-10 JPEG tar.

    python benchmarks/accuracy.py [--quick] [--data PATH_TO_CIFAR_TAR] [--device auto] [--only NAME]

The streamed case writes mnist5k's 5,000 real digits as JPEG photos of random sizes (140-260 px a
side, train/ and test/ as in mnist5k) and trains lenet5_modern with the same recipe from them:
DataLoader workers decode each photo to the net's 28 x 28 input (centre crop, no augmentation for
grey digits), so the gap to the cached 28 px run is what the photographs' round trip costs.

Ends with `accuracy <what> <value>` lines. The budget is the epoch count and recipe printed; the
wall time is measured and printed with the machine.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab.training import TrainConfig, Trainer  # noqa: E402


def write_digit_photos(root: Path, seed: int = 0) -> Path:
    """mnist5k's digits, each enlarged to a random 140-260 px rectangle and saved as a JPEG."""
    import random

    from PIL import Image

    from convolab.data import load_mnist5k

    data, rng = load_mnist5k(), random.Random(seed)
    for name, split in (("train", data.train), ("test", data.test)):
        for i, (image, label) in enumerate(zip(split.images, split.labels.tolist())):
            folder = root / name / data.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            size = (rng.randint(140, 260), rng.randint(140, 260))
            Image.fromarray(image[0].numpy()).resize(size, Image.BILINEAR).save(folder / f"{i}.jpg", quality=90)
    return root


def run(config: TrainConfig) -> tuple[float, float]:
    start = time.perf_counter()
    result = Trainer(config).fit()
    return result.test_acc, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 resnet20 epochs instead of the full budget")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR), help="CIFAR-10 image-folder tar")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, help="resnet20 epochs (default 10, --quick 3)")
    parser.add_argument("--only", choices=("lenet5_modern", "streamed", "resnet20"), help="run one case")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "lenet5_modern"):
            lenet = TrainConfig(model="lenet5_modern", data="mnist5k", epochs=10, output=f"{tmp}/lenet",
                                device=args.device, progress=False)
            acc, seconds = run(lenet)
            print(f"lenet5_modern on mnist5k, defaults (AdamW 2e-3, one-cycle, batch 64, 10 epochs): "
                  f"test accuracy {acc:.4f} in {seconds:.0f} s")
            figures.append(("lenet5_modern-mnist5k-10ep", acc))
        if args.only in (None, "streamed"):
            photos = write_digit_photos(Path(tmp) / "photos")
            streamed = TrainConfig(model="lenet5_modern", data=str(photos), epochs=10, output=f"{tmp}/streamed",
                                   device=args.device, progress=False, loader="stream", workers=2)
            acc, seconds = run(streamed)
            print(f"lenet5_modern on mnist5k as JPEG photos of 140-260 px, streamed by 2 workers, defaults: "
                  f"test accuracy {acc:.4f} in {seconds:.0f} s")
            figures.append(("lenet5_modern-mnist5k-photos-streamed-10ep", acc))
        if args.only in ("lenet5_modern", "streamed"):
            pass
        elif Path(args.data).is_file():
            epochs = args.epochs or (3 if args.quick else 10)
            resnet = TrainConfig(model="resnet20", data=args.data, epochs=epochs, batch_size=128, optimizer="sgd",
                                 lr=0.2, nesterov=True, weight_decay=5e-4, schedule="onecycle", warmup_epochs=1,
                                 label_smoothing=0.1, output=f"{tmp}/resnet20", device=args.device, progress=False)
            acc, seconds = run(resnet)
            print(f"resnet20 on CIFAR-10 ({args.data}), SGD nesterov lr 0.2 one-cycle, wd 5e-4, label smoothing "
                  f"0.1, crop+flip, batch 128, {epochs} epochs: test accuracy {acc:.4f} in {seconds:.0f} s")
            figures.append((f"resnet20-cifar10-{epochs}ep", acc))
        else:
            print(f"skipped resnet20: no CIFAR-10 tar at {args.data}")
    for what, value in figures:
        print(f"accuracy {what} {value:.4f}")


if __name__ == "__main__":
    main()
