"""Fine-tuning versus training from scratch on 500 CIFAR-10 images (issue 8).

Pretrain a model on five classes (airplane, automobile, bird, cat, deer), then fine-tune it on
the other five (dog, frog, horse, ship, truck) with 100 training images per class; train the
same model from scratch on the same 500 images for the same epochs; both are tested on the
test images of those five classes. Prints the machine, `accuracy finetune <v>`, `accuracy scratch <v>`
and `ratio finetune-minus-scratch-points <v>` (the issue asks for at least 10 points).

    python benchmarks/finetune.py --data ../shared/data/cifar10-jpg.tar.gz [--quick] [--model resnet20]
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from convolab.data import ImageData, Split, load_data  # noqa: E402
from convolab.errors import ConvolabError  # noqa: E402
from convolab.finetune import finetune_trainer  # noqa: E402
from convolab.training import TrainConfig, Trainer  # noqa: E402

SOURCE_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
TARGET_CLASSES = ("dog", "frog", "horse", "ship", "truck")
DEFAULT_TAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


def class_subset(data: ImageData, classes: tuple[str, ...], train_per_class: int | None,
                 test_per_class: int | None, seed: int = 0) -> ImageData:
    """The images of `classes` (relabelled 0..k-1), at most so many per class, drawn at random."""
    missing = [c for c in classes if c not in data.classes]
    if missing:
        raise SystemExit(f"{data.name} has no class {', '.join(missing)} "
                         f"(classes: {', '.join(data.classes)})")
    old = torch.tensor([data.classes.index(c) for c in classes])
    relabel = torch.full((len(data.classes),), -1, dtype=torch.int64)
    relabel[old] = torch.arange(len(classes))
    gen = torch.Generator().manual_seed(seed)

    def pick(split: Split, per_class: int | None) -> Split:
        chosen = []
        for k in old.tolist():
            idx = torch.nonzero(split.labels == k).flatten()
            idx = idx[torch.randperm(len(idx), generator=gen)][:per_class]
            chosen.append(idx)
        index = torch.sort(torch.cat(chosen)).values
        return Split(split.images[index], relabel[split.labels[index]])

    return ImageData(f"{data.name}-{len(classes)}", pick(data.train, train_per_class),
                     pick(data.test, test_per_class), list(classes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_TAR), help="the CIFAR-10 tar (default: %(default)s)")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="default: 10 (--quick: 4)")
    parser.add_argument("--pretrain-per-class", type=int, default=None, help="default: all 5,000")
    parser.add_argument("--epochs", type=int, default=None,
                        help="fine-tuning and from-scratch epochs (default: 30; --quick: 15)")
    parser.add_argument("--per-class", type=int, default=100, help="training images per new class")
    parser.add_argument("--test-per-class", type=int, default=None, help="default: all 1,000")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None, help="default: the engine's for the model")
    parser.add_argument("--image-size", type=int, default=None, help="default: the model's input size")
    parser.add_argument("--backbone-lr-scale", type=float, default=None, help="fine-tuning: backbone lr factor")
    parser.add_argument("--freeze-backbone", action="store_true", help="fine-tuning: train the new head only")
    parser.add_argument("--pretrained", help="a checkpoint pretrained on the five source classes (no pretraining)")
    parser.add_argument("--skip-scratch", action="store_true", help="fine-tune only (to try fine-tuning options)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", help="where the three runs go (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 pretraining images per class, 4 + 15 epochs, 300 test images per class")
    args = parser.parse_args(argv)
    # --quick sets what the command line leaves unset; an option given wins
    args.pretrain_epochs = args.pretrain_epochs or (4 if args.quick else 10)
    args.epochs = args.epochs or (15 if args.quick else 30)
    if args.quick:
        args.pretrain_per_class = args.pretrain_per_class or 1000
        args.test_per_class = args.test_per_class or 300
    if not Path(args.data).exists():
        print(f"skipped: the CIFAR-10 tar {args.data} is absent (give --data PATH)")
        return 0
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {machine()}")
    torch.manual_seed(0)
    cifar = load_data(args.data)
    source = class_subset(cifar, SOURCE_CLASSES, args.pretrain_per_class, args.test_per_class)
    target = class_subset(cifar, TARGET_CLASSES, args.per_class, args.test_per_class)
    out = Path(args.output or tempfile.mkdtemp(prefix="convolab-finetune-bench-"))
    common = dict(batch_size=args.batch_size, lr=args.lr, device=args.device, image_size=args.image_size,
                  progress=False)
    print(f"model {args.model}; pretrain {len(source.train)} images of {', '.join(SOURCE_CLASSES)} for "
          f"{args.pretrain_epochs} epochs; then {len(target.train)} images of {', '.join(TARGET_CLASSES)} "
          f"for {args.epochs} epochs; {len(target.test)} test images; runs in {out}")

    checkpoint = args.pretrained
    if checkpoint is None:
        start = time.perf_counter()
        pre = Trainer(TrainConfig(model=args.model, epochs=args.pretrain_epochs, output=str(out / "pretrain"),
                                  **common), data=source).fit()
        print(f"accuracy pretrain {pre.test_acc:.4f}  ({time.perf_counter() - start:.0f} s)")
        checkpoint = out / "pretrain" / "last.pt"

    start = time.perf_counter()
    tune_config = TrainConfig(model="", epochs=args.epochs, output=str(out / "finetune"),
                              freeze_backbone=args.freeze_backbone, backbone_lr_scale=args.backbone_lr_scale,
                              **common)
    tuned = finetune_trainer(checkpoint, tune_config, data=target).fit()
    print(f"accuracy finetune {tuned.test_acc:.4f}  ({time.perf_counter() - start:.0f} s)")
    if args.skip_scratch:
        return 0

    start = time.perf_counter()
    scratch_config = TrainConfig(model=args.model, epochs=args.epochs, output=str(out / "scratch"), **common)
    scratch = Trainer(scratch_config, data=target).fit()
    print(f"accuracy scratch {scratch.test_acc:.4f}  ({time.perf_counter() - start:.0f} s)")
    print(f"ratio finetune-minus-scratch-points {100 * (tuned.test_acc - scratch.test_acc):.1f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConvolabError as err:  # (a batch larger than the images asked for, ...): one line, as the CLI says it
        sys.exit(f"finetune.py: {err}")
