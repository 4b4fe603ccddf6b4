"""The default CPU thread count when another process keeps a core busy (issue: a default that does not
collapse under contention, with no loss on an idle machine).

Each setting is a whole `convolab train` command in its own process (as a user runs it): the default (no
--threads: PyTorch's count, lowered to the cores other running processes leave free, see
convolab/_platform.py) and every explicit --threads from 1 to the usable cores (--threads N = PyTorch's own
default when N is the core count). Each runs on an idle machine and beside one competing busy process (a
Python busy loop, started first). The figure is the images/s of the last epoch's training steps, from the
run's metrics.csv; every setting runs `--repeats` times and keeps its best. Prints the machine and ends
with `ratio <what> <value>` lines (the default's images/s, and PyTorch's own default's, over the best
explicit --threads, idle and loaded).

    python benchmarks/thread_contention.py            # resnet20 on mnist5k, 2 epochs a run
    python benchmarks/thread_contention.py --quick    # lenet5_modern, to check the script
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from convolab._platform import usable_cores  # noqa: E402


def train_images_per_second(model: str, threads: int | None, epochs: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        cmd = [sys.executable, "-m", "convolab", "train", model, "--data", "mnist5k", "--epochs", str(epochs),
               "--batch-size", str(batch), "--no-progress", "--output", str(Path(tmp) / "run")]
        if threads:
            cmd += ["--threads", str(threads)]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        rows = list(csv.DictReader(open(Path(tmp) / "run" / "metrics.csv")))
        return float(rows[-1]["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="lenet5_modern, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.model, args.repeats = "lenet5_modern", 1
    cores = usable_cores()
    settings: list[int | None] = [None, *range(1, cores + 1)]
    print(f"machine: {machine()}; {cores} usable cores; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.model} on mnist5k (4000 training images at 28 px), batch {args.batch_size}, {args.epochs} epochs a "
          f"run, fp32, channels-last; best of {args.repeats}")
    print("each setting: `convolab train` in its own process, OMP_NUM_THREADS unset; the competitor: "
          "`python -c 'while True: pass'`\n")
    results: dict[str, dict[str, float]] = {}
    for load in ("idle", "one busy process"):
        competitor = None
        if load != "idle":
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for threads in settings:
                name = "default" if threads is None else f"--threads {threads}"
                best = max(train_images_per_second(args.model, threads, args.epochs, args.batch_size)
                           for _ in range(args.repeats))
                results.setdefault(name, {})[load] = best
                print(f"  {load:17s} {name:12s} {best:8.0f} images/s", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    print()
    print(f"{'setting':12s} {'idle':>10s} {'loaded':>10s}")
    for name, row in results.items():
        print(f"{name:12s} {row['idle']:10.0f} {row['one busy process']:10.0f}")
    explicit = [r for n, r in results.items() if n != "default"]
    best_idle = max(r["idle"] for r in explicit)
    best_loaded = max(r["one busy process"] for r in explicit)
    default = results["default"]
    torch_default = results[f"--threads {cores}"]  # what PyTorch uses unless told
    print(f"\ndefault / best --threads: idle {default['idle'] / best_idle:.2f}x, loaded "
          f"{default['one busy process'] / best_loaded:.2f}x (goal: >= 0.5x loaded, no loss idle)")
    print(f"PyTorch's own default (--threads {cores}) / best: idle {torch_default['idle'] / best_idle:.2f}x, "
          f"loaded {torch_default['one busy process'] / best_loaded:.2f}x")
    print(f"ratio default-vs-best-threads-idle {default['idle'] / best_idle:.2f}")
    print(f"ratio default-vs-best-threads-loaded {default['one busy process'] / best_loaded:.2f}")
    print(f"ratio torch-default-vs-best-threads-idle {torch_default['idle'] / best_idle:.2f}")
    print(f"ratio torch-default-vs-best-threads-loaded {torch_default['one busy process'] / best_loaded:.2f}")


if __name__ == "__main__":
    main()
