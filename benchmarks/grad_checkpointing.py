"""Gradient checkpointing: the memory a training step holds and the time it takes, convolab's against the peers'
own checkpointing of the same network, each side in a fresh process.

    python benchmarks/grad_checkpointing.py [--models densenet121 resnet50] [--batch 8] [--size 224] [--steps 3]
                                            [--threads 2] [--json FILE] [--quick]

Sides, for each model, each built from scratch with the same batch, size, fp32, contiguous memory format, plain
SGD and thread count:
- convolab, plain and `model.set_grad_checkpointing()` (each block recomputed in the backward pass; a DenseNet
  layer's concatenation inside it);
- torchvision's `densenet*(memory_efficient=True)` (its checkpoint of each dense layer's concatenation, norm,
  ReLU and 1x1 convolution) and plain; torchvision's ResNet has no checkpointing;
- timm's `set_grad_checkpointing()` (its `checkpoint_seq` over each stage's blocks, or over DenseNet's layers as
  torchvision) and plain.

Memory: the process's peak resident memory during one step (forward, backward, SGD step) above what it held
before it, with the model, its gradients, the momentum and the batch already made (`ru_maxrss` of a process
that ran only that); the first step's, since the allocator keeps what it took. Time: the mean of `--steps`
steps after one more untimed.
Prints a line per side and `ratio <model>-<side>-memory-vs-plain <x>` and `...-time-vs-plain <x>` lines
(x < 1: less memory; > 1: slower), and `ratio <model>-convolab-memory-vs-<peer> <x>` between the checkpointed
sides. Without timm its sides are left out, said in a `skipped timm: ...` line. `--quick`: densenet121 alone, one
timed step.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

try:
    import timm
except ImportError as missing:  # (its sides are skipped, said so; the others run)
    timm, TIMM_MISSING = None, str(missing)

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

import convolab  # noqa: E402

SIDES = ("convolab", "convolab-checkpointed", "torchvision", "torchvision-checkpointed", "timm",
         "timm-checkpointed")


def build(side: str, name: str):
    """The side's model of `name` (1000 classes, 3 channels), checkpointed where the side's name says."""
    library, _, checkpointed = side.partition("-")
    if library == "convolab":
        model = convolab.create_model(name)
        model.set_grad_checkpointing(bool(checkpointed))
        return model
    if library == "torchvision":
        if name.startswith("densenet"):
            return getattr(torchvision.models, name)(memory_efficient=bool(checkpointed))
        return None if checkpointed else getattr(torchvision.models, name)()
    model = timm.create_model(name)
    model.set_grad_checkpointing(bool(checkpointed))
    return model


def resident_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def measure(side: str, name: str, batch: int, size: int, steps: int, threads: int) -> dict | None:
    """(In its own process) the side's peak memory above its start for one step, and its mean step time."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(side, name)
    if model is None:
        return None
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    for p in model.parameters():  # (the gradients' and the momentum's memory before the step, as every side's)
        p.grad = torch.zeros_like(p)
    optimizer.step()  # (a zero gradient: the weights unchanged, the momentum buffers made)

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        out = model(x)
        torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y).backward()
        optimizer.step()

    before = resident_kib()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # (untimed: the first steps still pay for the allocator's and oneDNN's first calls)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"side": side, "model": name, "step_mib": (peak - before) / 1024,
            "seconds": (time.perf_counter() - started) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["densenet121", "resnet50"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one timed step, densenet121 alone (a smoke run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("SIDE", "MODEL"), help=argparse.SUPPRESS)  # (a side's process)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.batch, args.size, args.steps, args.threads)))
        return
    if args.quick:
        args.steps, args.models = 1, ["densenet121"]
    sides = SIDES if timm is not None else tuple(s for s in SIDES if not s.startswith("timm"))
    if timm is None:
        print(f"skipped timm: {TIMM_MISSING}")
    print(f"machine: {machine()}; batch {args.batch} at {args.size} px, fp32, contiguous, SGD, {args.threads} "
          f"threads, each side in its own process")
    rows = []
    for name in args.models:
        for side in sides:
            out = subprocess.run([sys.executable, __file__, "--one", side, name, "--batch", str(args.batch), "--size",
                                  str(args.size), "--steps", str(args.steps), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            row = json.loads(out)
            if row is None:
                print(f"{name:12s} {side:26s} (no checkpointing in {side.split('-')[0]}'s {name})")
                continue
            rows.append(row)
            print(f"{name:12s} {side:26s} step memory {row['step_mib']:8.1f} MiB  {row['seconds']:6.2f} s/step")
    by = {(r["model"], r["side"]): r for r in rows}
    for name in args.models:
        for library in ("convolab", "torchvision", "timm"):
            plain, checked = by.get((name, library)), by.get((name, f"{library}-checkpointed"))
            if plain and checked:
                print(f"ratio {name}-{library}-memory-vs-plain {checked['step_mib'] / plain['step_mib']:.2f}")
                print(f"ratio {name}-{library}-time-vs-plain {checked['seconds'] / plain['seconds']:.2f}")
        ours = by.get((name, "convolab-checkpointed"))
        for peer in ("torchvision", "timm"):
            theirs = by.get((name, f"{peer}-checkpointed"))
            if ours and theirs:
                print(f"ratio {name}-convolab-memory-vs-{peer} {ours['step_mib'] / theirs['step_mib']:.2f}")
                print(f"ratio {name}-convolab-time-vs-{peer} {ours['seconds'] / theirs['seconds']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
