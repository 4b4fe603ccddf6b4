"""RandAugment, TrivialAugmentWide and AutoAugment (CIFAR-10) on a training batch: convolab's own batched
code against the libraries a user would reach for, on the same device, beside a resnet20 training step.

    python benchmarks/augment_policies.py [--device cpu|cuda] [--batch 256] [--iters 20] [--json FILE]

Issue 17 asks for each image's own random draw, on the batch, on the training device, and for a library
wherever one does that at a speed that keeps the step the bottleneck. Sides (uint8 CIFAR-10 images at
32 px from the tar when it is there, else seeded random pixels; each side's time synchronized with the
device):

- convolab: `convolab.data.autoaugment.auto_augment` on the whole batch: every image draws its own
  operations, magnitudes and signs; each operation runs once on the images that drew it;
- torchvision per image: `torchvision.transforms.v2` called on each image in a Python loop, the only way
  the library gives each image its own draw;
- torchvision batched: the same transform called once on the batch: fast, but one draw for every image
  of the batch (shown for scale: it does not do what is asked);
- kornia: `kornia.augmentation.auto` (when installed) on the batch: parameters per image, but the
  operations chosen once per call (its policy selector runs once per forward).

The per-image check feeds 64 copies of one image and counts the distinct outputs over 5 calls (the least
of the 5 is printed): 1 means one draw for the whole batch. The yardstick is one resnet20 training step
(forward, backward, SGD; channels-last, as convolab trains it on every device; fp32 on the CPU, bf16
autocast on a GPU) at the same batch:
each side's time is printed as a share of it. The yardstick is timed in turns with the sides: before
the first policy and again after each policy's sides; a policy's shares are of the mean of the step
timed just before and just after its sides (both printed), so that a load spike does not skew them all.
Ends with `ratio <policy>-convolab-vs-<side> <x>` lines (images/s; >1: convolab faster).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_CIFAR_TAR, machine  # noqa: E402

from convolab import create_model  # noqa: E402
from convolab.data.autoaugment import auto_augment  # noqa: E402

POLICIES = {"rand": "RandAugment", "trivial": "TrivialAugmentWide", "autoaugment-cifar10": "AutoAugment (CIFAR-10)"}


def cifar_images(n: int, tar: Path) -> tuple[torch.Tensor, str]:
    if not tar.is_file():
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), "seeded random pixels"
    images = []
    with tarfile.open(tar) as t:
        for member in t:
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                with Image.open(io.BytesIO(t.extractfile(member).read())) as im:
                    images.append(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1))
                if len(images) == n:
                    break
    return torch.stack(images), f"the first {n} images of {tar.name}"


def torchvision_sides(policy: str):
    from torchvision.transforms import v2

    t = {"rand": v2.RandAugment(), "trivial": v2.TrivialAugmentWide(),
         "autoaugment-cifar10": v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)}[policy]
    return (lambda x: torch.stack([t(img) for img in x])), t


def kornia_side(policy: str):
    try:
        import kornia.augmentation.auto as K
    except ImportError:
        return None
    t = {"rand": K.RandAugment(n=2, m=9), "trivial": K.TrivialAugment(),
         "autoaugment-cifar10": K.AutoAugment(policy="cifar10")}[policy]
    return lambda x: (t(x.float().div_(255)) * 255).round_().clamp_(0, 255).to(torch.uint8)


def timed(fn, x: torch.Tensor, iters: int, device: torch.device) -> float:
    """Seconds per call: the best of 3 rounds of `iters` calls, after 3 warm-up calls."""
    for _ in range(3):
        fn(x)
    best = float("inf")
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            fn(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / iters)
    return best


def distinct_outputs(fn, image: torch.Tensor) -> int:
    batch = image.expand(64, -1, -1, -1).contiguous()
    return min(len({out.cpu().numpy().tobytes() for out in fn(batch)}) for _ in range(5))


def step_timer(batch: int, device: torch.device, iters: int):
    """A function that times one resnet20 training step (seconds, best of 3 rounds) each time it is called, as
    convolab trains it: channels-last on every device (its default, `--channels-last`), bf16 autocast on CUDA."""
    model = create_model("resnet20").to(device).to(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step(_):
        with torch.autocast(device.type, torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return lambda: timed(step, x, max(2, iters // 4), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20, help="calls per timed round (best of 3 rounds)")
    parser.add_argument("--data", default=str(SHARED_CIFAR_TAR), help="the CIFAR-10 JPEG tar (else random pixels)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    images, source = cifar_images(args.batch, Path(args.data))
    x = images.to(device)
    print(f"machine: {machine()}; device {device}")
    print(f"batch: {args.batch} x 3 x 32 x 32 uint8 on {device} ({source}); time per call: best of 3 rounds of "
          f"{args.iters} calls")
    time_step = step_timer(args.batch, device, args.iters)
    before = time_step()
    print(f"yardstick: one resnet20 training step at batch {args.batch} (channels-last, as convolab trains it): "
          f"{before * 1e3:.1f} ms ({args.batch / before:,.0f} img/s) before the first policy; timed again after each "
          "policy's sides")
    figures: dict = {"device": str(device), "machine": machine(), "batch": args.batch, "data": source,
                     "resnet20_step_ms": before * 1e3, "resnet20_step_ms_after": {}, "policies": {}}
    steps = []
    lines = []
    print(f"\n{'policy':<24}{'side':<24}{'images/s':>10}{'ms/batch':>10}{'of a step':>11}{'distinct/64':>13}")
    for policy, title in POLICIES.items():
        generator = torch.Generator(device=device).manual_seed(0)
        per_image, batched = torchvision_sides(policy)
        sides = {"convolab": lambda b, p=policy, g=generator: auto_augment(b, p, g),
                 "torchvision per image": per_image, "torchvision batched": batched}
        kornia = kornia_side(policy)
        if kornia is not None:
            sides["kornia"] = kornia
        rows = {}
        for side, fn in sides.items():
            seconds = timed(fn, x, args.iters if side != "torchvision per image" else max(2, args.iters // 4), device)
            rows[side] = {"images_per_second": args.batch / seconds, "ms_per_batch": seconds * 1e3,
                          "distinct_of_64": distinct_outputs(fn, x[:1])}
        after = time_step()
        step = (before + after) / 2
        steps.append(f"{title} {before * 1e3:.1f} / {after * 1e3:.1f} ms")
        for side, r in rows.items():
            r["share_of_step"] = r["ms_per_batch"] / 1e3 / step
            print(f"{title:<24}{side:<24}{r['images_per_second']:>10,.0f}{r['ms_per_batch']:>10.2f}"
                  f"{r['share_of_step']:>10.1%}{r['distinct_of_64']:>13}", flush=True)
        figures["policies"][policy] = rows
        figures["resnet20_step_ms_after"][policy] = after * 1e3
        before = after
        for side, r in rows.items():
            if side != "convolab":
                ratio = rows["convolab"]["images_per_second"] / r["images_per_second"]
                lines.append(f"ratio {policy}-convolab-vs-{side.replace(' ', '-')} {ratio:.2f}")
    if kornia_side("rand") is None:
        print("skipped kornia: not installed (pip install kornia)")
    print("(of a step: the side's time per batch over one resnet20 training step's, the mean of the step timed "
          "just before and just after the policy's sides; distinct/64: distinct outputs of 64 copies of one image, "
          "the least over 5 calls)")
    print(f"yardstick before / after each policy's sides: {'; '.join(steps)}")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
