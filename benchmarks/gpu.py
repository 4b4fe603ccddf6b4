"""Everything convolab claims for a GPU, in one run on one CUDA GPU of at most 1,070 s (about 18 minutes:
the sum of its parts' time limits, below; 1,180 s with --compile), most parts ending well inside theirs.

    python benchmarks/gpu.py --data PATH/cifar10-jpg.tar.gz [--out DIR] [--only PART ...] [--dry-run]

Parts, in this order (each in its own process, with its own time limit, so one that fails or hangs
costs only itself; every figure lands in OUT/gpu.json as soon as its part ends, and the whole
output in OUT/gpu.log):

1. `env`: the device, driver-side CUDA, torch, Python, CPUs; that the CIFAR-10 tar is there.
2. `pytest`: `pytest -m cuda`, every test of a CUDA path (bf16 and fp16 autocast, channels-last,
   torch.compile, data resident in GPU memory, pinned-memory streaming, SyncBatchNorm, NCCL).
3. `resnet20`: `convolab train resnet20 --recipe fast` on the CIFAR-10 tar with an empty image
   cache (cold: the JPEGs are decoded as part of the command), to the paper's 91.25%.
4. `resnet18`: `convolab train resnet18 --model-option stem=cifar --recipe fast --epochs 20`, the
   image cache now warm, to 94%.
5. `resnet20-graphs`: part 3's command with `--compile --compile-mode reduce-overhead` (the step's
   kernels replayed as CUDA graphs, compiled inside the command's time); the image cache warm where an earlier
   part or call on the machine filled it, else cold (each part reports which).
6. `resnet20-large`: part 3's command at batch 1024 and lr 0.8 (the recipe's rate scaled with the batch), 60
   epochs, the image cache warm: if a step costs the host the same whatever the batch, as on the first H200, an
   epoch costs half as much, and the extra epochs buy the accuracy the larger batch costs.
   Parts 3-6 each report the wall time from starting the command to the end of the first epoch whose test
   accuracy reaches the target (read off the command's own output, by this script's clock), the
   accuracy of every epoch, and the command's whole time.
7. `throughput`: training images/s of convolab's engine, the hand-written loop and the textbook
   loop on the same GPU, for lenet5, resnet20, resnet18 (CIFAR stem, 32 px) and googlenet_small
   on the CIFAR-10 training images at 32 px, batch 512. All three sides run bf16 autocast,
   channels-last, cudnn.benchmark and the same SGD; each trains 3 epochs and keeps its best of
   epochs 2-3 (the first pays for cudnn's algorithm search and worker start-up).
   - textbook: a torchvision-style Dataset of PIL images, DataLoader(shuffle, pin_memory,
     persistent workers, one worker per CPU but one) with per-sample RandomCrop/Flip/ToTensor/
     Normalize, each batch copied to the GPU (non_blocking);
   - hand-written: the images as one uint8 tensor in GPU memory, batches by indexing, crop and flip
     on the whole batch, the running loss and accuracy kept on the device;
   - convolab: `Trainer.fit` with the same model, data, batch and optimizer (its images/s is the
     engine's device-synchronized clock over the training steps; the test-set evaluation each
     epoch does is excluded, as the others do none).

8. `augment`: `benchmarks/augment_policies.py` on the GPU: RandAugment, TrivialAugmentWide and
   AutoAugment with each image's own draw, convolab's batched code against torchvision's per-image loop
   (and, for scale, torchvision's one-draw batched call and kornia where installed: kornia travels as
   a wheel), each as a share of a resnet20 training step (issue 17: is our own code needed on a GPU?).

`--only throughput --batches 512 1024 2048 --models resnet20` measures the hand-written loop and convolab at each batch
(the textbook loop at the first only): how far a larger batch buys images/s where the host bounds the step.
`--only throughput --compile [--compile-mode reduce-overhead] [--models resnet20 resnet18]` measures the
hand-written loop and convolab with torch.compile, in reduce-overhead mode as CUDA graphs (the first H200
run found every step bound by the host at about 11 ms whatever the network: fewer kernel launches is the
lever to try first).

`--dry-run` runs every part on the CPU with tiny sizes (a 1,200-image subset of the tar, 1 epoch),
to catch mistakes before GPU minutes are spent. Ends with a table of every figure and `ratio <what> <x>` lines
(convolab's training images/s over the hand-written and the textbook loop's). `env` runs first in every call,
`--only` or not, so that each call's gpu.json names the machine its figures are of.

The parts' limits add up to 1,070 s, more than one 600 s call of a lent device machine and more than a
session's 15 minutes of device time. What the first H200 run measured (parts 3, 4 and 7, eager) stands
in the README; a session with a GPU should run what is new first, in two calls (each call's figures land
in its own gpu.json, since $OUT is emptied before each call; the image cache, in the machine's temporary
folder, serves both; a compiled throughput run is stored under its own key). The CIFAR-10 tar does not travel
by itself (`../shared` stays behind): copy it into a git-ignored folder of the repository, e.g.
`.devdata/cifar10-jpg.tar.gz`, name that folder in the call's `carry`, and give `--data .devdata/cifar10-jpg.tar.gz`:

    python benchmarks/gpu.py --only env pytest resnet20-large resnet20-graphs       # at most 540 s
    python benchmarks/gpu.py --only throughput --models resnet20 --batches 512 1024 2048 && \
    python benchmarks/gpu.py --only throughput --models resnet20 --compile --compile-mode reduce-overhead
                                                                                    # at most 450 s

(`--only` runs its parts in the order given: resnet20-large first fills the image cache, so that
resnet20-graphs, which also compiles inside its 150 s, does not decode the tar too; the compiled throughput
skips the textbook loop, whose eager figure stands, and has 280 s: the hand-written
loop and convolab each compile first; each side's figure is kept as it is measured). The limits of the two
(990 s) and the machine's start (a minute or more) exceed 15 minutes of device time:
they are ceilings, the first H200 run's parts ended well inside theirs (pytest 60 s of 180), and the
second call, made at once on the still-warm machine, runs with whatever time is left (the lender cuts a
command to it), its uncompiled batches first. Then, with time left, `python benchmarks/learning_parity.py
--full` (convolab's fast recipe against the same recipe written as a textbook loop, both on the GPU: is a
shortfall the recipe's or the engine's?).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from convolab.training.config import COMPILE_MODES, CUDA_GRAPH_MODES

ROOT = Path(__file__).resolve().parents[1]
# The accuracy runs (after `convolab train`): each trains from scratch on the CIFAR-10 tar with the fast
# recipe; resnet20 against the paper's 91.25%, resnet18 (CIFAR stem) against 94%.
RUNS = {
    "resnet20": ["resnet20", "--recipe", "fast"],
    "resnet18": ["resnet18", "--model-option", "stem=cifar", "--recipe", "fast", "--epochs", "20"],
    # The same resnet20 run with its steps replayed as CUDA graphs (the first H200 run was bound by launching
    # kernels, about 11 ms a step whatever the network); the compilation counts in its wall time.
    "resnet20-graphs": ["resnet20", "--recipe", "fast", "--compile", "--compile-mode", "reduce-overhead"],
    # Twice the batch at twice the rate (linear scaling), 60 epochs: where a step costs the host the same ~11 ms at
    # any batch, an epoch of half the steps costs half the time, so 60 epochs cost what 30 do at 512.
    "resnet20-large": ["resnet20", "--recipe", "fast", "--batch-size", "1024", "--lr", "0.8", "--epochs", "60"],
}
TARGETS = {"resnet20": 0.9125, "resnet18": 0.94}
PARTS = ("env", "pytest", *RUNS, "throughput", "augment")
LIMITS = {"env": 60, "pytest": 180, "throughput": 170, "augment": 60} | dict.fromkeys(RUNS, 150)  # seconds
COMPILED_THROUGHPUT_LIMIT = 280  # the hand-written loop and convolab each compile resnet20 first
THROUGHPUT_MODELS = (("lenet5", {"img_size": 32}), ("resnet20", {}), ("resnet18", {"stem": "cifar"}),
                     ("googlenet_small", {}))
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) .*test loss \S+ acc ([\d.]+)")


# ----- the orchestrator -----------------------------------------------------------------------------
class Log:
    def __init__(self, path: Path):
        self.file = open(path, "a", buffering=1)

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        self.file.write(line + "\n")


def run_streamed(cmd: list[str], timeout: float, log: Log, env: dict | None = None) -> tuple[int, list]:
    """Run `cmd`, echo its output, and return (exit code, [(seconds since start, line)]); rc 124 on timeout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=env, cwd=ROOT, start_new_session=True)
    # The limit holds even while the command prints nothing (a watchdog kills its process group on time).
    expired = threading.Event()
    watchdog = threading.Timer(timeout, lambda: (expired.set(), os.killpg(proc.pid, 9)))
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            t = time.perf_counter() - start
            lines.append((t, line.rstrip("\n")))
            log(f"  [{t:6.1f}s] {line.rstrip()}")
        proc.wait()
        lines.append((time.perf_counter() - start, ""))  # the command's end, after its last line (its teardown)
    finally:
        watchdog.cancel()
    if expired.is_set():
        log(f"  timed out after {timeout:.0f}s: {' '.join(cmd[:6])} ...")
        return 124, lines
    return proc.returncode, lines


def save(out: Path, results: dict) -> None:
    tmp = out / "gpu.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(out / "gpu.json")


def part_env(args, log: Log) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "cuda_available": torch.cuda.is_available(), "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info |= {"device": torch.cuda.get_device_name(0), "capability": f"{p.major}.{p.minor}",
                 "memory_gib": round(p.total_memory / 2**30, 1), "multiprocessors": p.multi_processor_count,
                 "devices": torch.cuda.device_count()}
    else:
        info["device"] = "cpu (no CUDA device)"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        info["nvidia_smi"] = f"not available ({err})"
    data = Path(args.data)
    info["data"] = str(data)
    info["data_bytes"] = data.stat().st_size if data.is_file() else None
    for key, value in info.items():
        log(f"  {key}: {value}")
    if not data.is_file():
        raise SystemExit(f"the CIFAR-10 tar is not at {data}; give --data")
    return info


def part_pytest(args, log: Log) -> dict:
    # -n 0: one test process (the CUDA tests share one GPU; pyproject's addopts ask for one per core)
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-n", "0", "-q", "-p", "no:cacheprovider", "-rs", "tests"]
    start = time.perf_counter()
    rc, lines = run_streamed(cmd, LIMITS["pytest"] - 10, log)
    if rc in (2, 4):  # a test module that cannot be imported here stops the collection: the CUDA file alone
        log("  collection failed; running tests/test_cuda.py alone")
        rc, lines = run_streamed(cmd[:-1] + ["tests/test_cuda.py"], LIMITS["pytest"] - 10 - (time.perf_counter()
                                                                                            - start), log)
    summary = next((line for _, line in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error)", line)), "")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    return {"exit_code": rc, "summary": summary.strip("= "), "counts": counts,
            "seconds": round(time.perf_counter() - start, 1)}


def part_accuracy(name: str, args, log: Log, cache: Path) -> dict:
    """Run the part's `convolab train` command and read each epoch's test accuracy off its output."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-{name}-"))
    cold = not any(cache.rglob("*")) if cache.exists() else True
    cmd = [sys.executable, "-m", "convolab", "train", *RUNS[name], "--data", args.data, "--no-progress",
           "--output", str(run_dir)]
    if args.dry_run:
        cmd += ["--epochs", "1", "--device", "cpu", "--batch-size", "256"]  # (the subset: 1,000 training images)
    env = os.environ | {"CONVOLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    log(f"  $ convolab train {' '.join(cmd[4:])}   (image cache {'cold' if cold else 'warm'}: {cache})")
    rc, lines = run_streamed(cmd, LIMITS[name] - 5, log, env)
    epochs = []
    for t, line in lines:
        m = EPOCH_LINE.match(line)
        if m:
            epochs.append({"epoch": int(m[1]), "test_acc": float(m[3]), "seconds_since_command_start": round(t, 2)})
    target = TARGETS[RUNS[name][0]]
    hit = next((e for e in epochs if e["test_acc"] >= target), None)
    result = {"command": "convolab train " + " ".join(cmd[4:]), "exit_code": rc, "image_cache": "cold" if cold
              else "warm", "target": target, "reached": hit is not None,
              "seconds_to_target": hit["seconds_since_command_start"] if hit else None,
              "epoch_reaching_target": hit["epoch"] if hit else None,
              "best_test_acc": max((e["test_acc"] for e in epochs), default=None),
              "final_test_acc": epochs[-1]["test_acc"] if epochs else None,
              "command_seconds": round(lines[-1][0], 2) if lines else None, "epochs": epochs}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():  # the engine's own clock: steps, evaluation, since the trainer began
        rows = json.loads(metrics.read_text())
        result["engine"] = [{k: round(r[k], 3) for k in ("train_seconds", "eval_seconds", "images_per_second",
                                                          "elapsed_seconds")} for r in rows]
        config = json.loads((run_dir / "config.json").read_text())
        result["recipe"] = {k: config[k] for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov",
                                                   "weight_decay", "schedule", "warmup_epochs", "label_smoothing",
                                                   "augment", "tta", "ema_decay", "channels_last", "amp")}
        result["recipe"]["amp_dtype"] = config["resolved"]["amp_dtype"]
    curves = run_dir / "curves.png"
    if curves.is_file():
        (args.out / f"{name}-curves.png").write_bytes(curves.read_bytes())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"),
                        help="the CIFAR-10 image-folder tar (default: ../shared/data/cifar10-jpg.tar.gz)")
    parser.add_argument("--out", type=Path, help="where gpu.json, gpu.log and the curves go (default: $OUT, else "
                        "./gpu-out)")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts only")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, to check the script")
    parser.add_argument("--compile", action="store_true", help="throughput: torch.compile the hand-written loop's "
                        "model and convolab's (--compile); the textbook loop, bound by its per-sample data work, "
                        "stays eager")
    parser.add_argument("--compile-mode", default="default", choices=COMPILE_MODES,
                        help="throughput, with --compile: torch.compile's mode on both sides (reduce-overhead: the "
                        "step's kernels replayed as CUDA graphs)")
    parser.add_argument("--models", nargs="+", metavar="MODEL", help="throughput: these models only (of "
                        + ", ".join(name for name, _ in THROUGHPUT_MODELS) + ")")
    parser.add_argument("--batches", nargs="+", type=int, default=[512], metavar="N",
                        help="throughput: these batch sizes (default 512; the textbook loop runs at the first only)")
    parser.add_argument("--part", choices=("throughput",), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.part == "throughput":
        return throughput_main(args)
    if not Path(args.data).is_file():  # (the default is beside this checkout: ../shared/data)
        parser.error(f"--data {args.data}: no such file; give the CIFAR-10 image-folder tar (cifar10-jpg.tar.gz)")
    args.out = args.out or Path(os.environ.get("OUT") or "gpu-out")
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "gpu.log")
    results = json.loads((args.out / "gpu.json").read_text()) if (args.out / "gpu.json").is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="convolab-gpu-"))
    if args.dry_run:
        args.data = str(subset_tar(Path(args.data), work / "cifar-subset.tar", per_class=100, test_per_class=20))
        log(f"dry run: a subset of the tar at {args.data}")
    # one image cache for every call on the machine (the second call need not decode the JPEGs again); a dry run's
    # subset in its own
    cache = work / "image-cache" if args.dry_run else Path(tempfile.gettempdir()) / "convolab-gpu-image-cache"
    results["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results["dry_run"] = args.dry_run
    # env first in every call, --only or not: each call's gpu.json and log name the machine its figures are of
    for part in ["env", *(p for p in args.only or PARTS if p != "env")]:
        limit = COMPILED_THROUGHPUT_LIMIT if part == "throughput" and args.compile else LIMITS[part]  # (compiling)
        log(f"== {part} (limit {limit} s)")
        start = time.perf_counter()
        try:
            if part == "env":
                results["env"] = part_env(args, log)
            elif part == "pytest":
                results["pytest"] = part_pytest(args, log)
            elif part in RUNS:
                results[part] = part_accuracy(part, args, log, cache)
            elif part == "augment":
                figures = args.out / "augment.json"
                cmd = [sys.executable, str(Path(__file__).resolve().parent / "augment_policies.py"), "--data",
                       args.data, "--json", str(figures)] + (["--device", "cpu", "--iters", "2", "--batch", "64"]
                                                              if args.dry_run else [])
                rc, _ = run_streamed(cmd, limit - 5, log, os.environ | {"PYTHONUNBUFFERED": "1"})
                results["augment"] = {"exit_code": rc} | (json.loads(figures.read_text()) if figures.is_file() else {})
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--part", "throughput", "--data", args.data,
                       "--out", str(args.out)] + (["--dry-run"] if args.dry_run else []) + \
                    (["--compile", "--compile-mode", args.compile_mode] if args.compile else []) + \
                    (["--models", *args.models] if args.models else []) + \
                    ["--batches", *map(str, args.batches)]
                env = os.environ | {"CONVOLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
                rc, lines = run_streamed(cmd, limit - 5, log, env)
                found = [json.loads(line[len("RESULT "):]) for _, line in lines if line.startswith("RESULT ")]
                partial = [json.loads(line[len("PARTIAL "):]) for _, line in lines if line.startswith("PARTIAL ")]
                key = f"throughput-compiled-{args.compile_mode}" if args.compile else "throughput"  # (one run each)
                results[key] = {"exit_code": rc, "models": found, "sides": partial}
        except SystemExit as err:
            results[part] = {"error": str(err)}
            log(f"  {part} failed: {err}")
        except Exception as err:  # keep going: the other parts' figures still count
            results[part] = {"error": f"{type(err).__name__}: {err}"}
            log(f"  {part} failed: {type(err).__name__}: {err}")
        log(f"== {part} done in {time.perf_counter() - start:.1f} s")
        save(args.out, results)
    summary(results, log)


def summary(results: dict, log: Log) -> None:
    env, ratios = results.get("env", {}), []
    log("")
    log(f"device: {env.get('device')} ({env.get('nvidia_smi', '')}); torch {env.get('torch')}, "
        f"CUDA {env.get('cuda_runtime')}, {env.get('cpus')} CPUs")
    if "pytest" in results:
        log(f"pytest -m cuda: {results['pytest'].get('summary') or results['pytest']}")
    for name in RUNS:
        r = results.get(name)
        if r and "target" in r:
            when = (f"reached {r['target']:.4f} at epoch {r['epoch_reaching_target']} after "
                    f"{r['seconds_to_target']:.1f} s" if r["reached"] else f"did not reach {r['target']:.4f}")
            log(f"{name}: {when} (image cache {r['image_cache']}); best {r['best_test_acc']}, final "
                f"{r['final_test_acc']}, command {r['command_seconds']} s")
        elif r:
            log(f"{name}: {r}")
    measured = [(key, m) for key, part in results.items() if key.startswith("throughput")
                for m in part.get("models", [])]
    for key, m in measured:
        textbook = (f"textbook {m['textbook']:9,.0f} img/s  " if "textbook" in m else "") + \
            (f"convolab/textbook {m['convolab'] / m['textbook']:.2f}x  " if "textbook" in m else "")
        log(f"{m['model']:16s} batch {m['batch']:5d}  hand-written {m['handwritten']:9,.0f} img/s  "
            f"convolab {m['convolab']:9,.0f} img/s  {textbook}convolab/hand-written "
            f"{m['convolab'] / m['handwritten']:.2f}x")
        # (key: throughput, or throughput-compiled-MODE)
        what = f"ratio {m['model'].replace(' ', '-')}-b{m['batch']}{key[len('throughput'):]}-convolab-vs"
        ratios.append(f"{what}-handwritten {m['convolab'] / m['handwritten']:.2f}")
        if "textbook" in m:
            ratios.append(f"{what}-textbook {m['convolab'] / m['textbook']:.2f}")
    for policy, sides in results.get("augment", {}).get("policies", {}).items():
        log(f"augment {policy}: " + "; ".join(f"{side} {r['images_per_second']:,.0f} img/s ({r['share_of_step']:.1%} "
                                               f"of a resnet20 step, {r['distinct_of_64']}/64 distinct)"
                                               for side, r in sides.items()))
    for line in ratios:  # (as every benchmark ends: `ratio <what> <value>`)
        log(line)


def subset_tar(source: Path, dest: Path, per_class: int, test_per_class: int) -> Path:
    """A small image-folder tar of the first images of each class of `source` (for --dry-run)."""
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(source) as src, tarfile.open(dest, "w") as out:
        for member in src:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4:
                continue
            key = (parts[-3], parts[-2])
            if counts.get(key, 0) < (per_class if parts[-3] == "train" else test_per_class):
                counts[key] = counts.get(key, 0) + 1
                out.addfile(member, src.extractfile(member))
    return dest


# ----- the throughput part (a child process) ----------------------------------------------------------
def throughput_main(args) -> None:
    import torch
    import torch.nn.functional as F

    from convolab import create_model
    from convolab.data import ImageData, load_data
    from convolab.data.augment import random_crop, random_flip
    from convolab.training import TrainConfig, Trainer

    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    torch.backends.cudnn.benchmark = True  # every side: fixed shapes, so cuDNN may pick its fastest kernels
    epochs = 3
    batches = [b // 4 for b in args.batches] if args.dry_run else args.batches  # (dry run: 128 for 512)
    data = load_data(args.data)
    if args.dry_run:
        data = ImageData(data.name, data.train.subset(torch.arange(768)), data.test, data.classes)
    mean_, std_ = data.channel_stats()
    workers = max(2, (os.cpu_count() or 2) - 1)
    print(f"device {device}, batch {', '.join(map(str, batches))}, {len(data.train)} training images, "
          f"{epochs} epochs a side, "
          f"bf16 {'on' if amp else 'off (CPU)'}, channels-last, textbook workers {workers}", flush=True)

    def autocast():
        return torch.autocast(device.type, dtype=amp, enabled=amp is not None)

    class PILDataset(torch.utils.data.Dataset):
        """What a torchvision data set hands a DataLoader: one PIL image and label at a time."""

        def __init__(self, split, transform):
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

    def build(name: str, options: dict):
        torch.manual_seed(0)
        model = create_model(name, num_classes=10, in_chans=3, **options).to(device)
        return model.to(memory_format=torch.channels_last)

    def synced() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def textbook(name: str, options: dict, batch: int) -> list[float]:
        import torchvision.transforms as T

        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                               T.Normalize(mean_, std_)])
        loader = torch.utils.data.DataLoader(
            PILDataset(data.train, transform), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
            pin_memory=device.type == "cuda", persistent_workers=True, prefetch_factor=4)
        model = build(name, options)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        model.train()
        speeds = []
        for _ in range(epochs):
            start, seen = synced(), 0
            for x, y in loader:
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                with autocast():
                    loss = F.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(y)
            speeds.append(seen / (synced() - start))
        del loader
        return speeds

    def handwritten(name: str, options: dict, batch: int) -> list[float]:
        model = build(name, options)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        mode = None if args.compile_mode == "default" else args.compile_mode
        forward = torch.compile(model, mode=mode) if args.compile else model
        graphs = args.compile and args.compile_mode in CUDA_GRAPH_MODES
        images, labels = data.train.images.to(device), data.train.labels.to(device)
        mean = torch.tensor(mean_, device=device).view(1, -1, 1, 1)
        std = torch.tensor(std_, device=device).view(1, -1, 1, 1)
        gen = torch.Generator(device=device).manual_seed(1)
        steps, speeds = len(labels) // batch, []
        model.train()
        for _ in range(epochs):
            start = synced()
            perm = torch.randperm(len(labels), device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for b in range(steps):
                idx = perm[b * batch:(b + 1) * batch]
                x = random_flip(random_crop(images[idx], 4, gen), gen)  # on uint8: a quarter of the bytes
                x = x.float().div_(255).sub_(mean).div_(std).contiguous(memory_format=torch.channels_last)
                y = labels[idx]
                if graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                with autocast():
                    logits = forward(x)
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
            print(f"    hand-written epoch: loss {loss_sum.item() / (steps * batch):.3f}, "
                  f"acc {correct.item() / (steps * batch):.3f}", flush=True)
            speeds.append(steps * batch / (synced() - start))
        return speeds

    def engine(name: str, options: dict, batch: int) -> list[float]:
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(model=name, data=data.name, epochs=epochs, batch_size=batch, optimizer="sgd",
                                 lr=0.01, weight_decay=0.0, schedule="constant", warmup_epochs=0, augment="crop-flip",
                                 output=tmp, device=str(device), progress=False, image_size=32,
                                 model_options=options, amp="bf16" if amp else "off", compile=args.compile,
                                 compile_mode=args.compile_mode if args.compile else "default")
            result = Trainer(config, data=data).fit()
        return [row["images_per_second"] for row in result.history]

    for name, options in THROUGHPUT_MODELS:
        if args.models and name not in args.models:
            continue
        for batch in batches:
            # the textbook loop at the first batch only: its per-sample work in the workers bounds it at any batch
            # (compiled: the hand-written loop and convolab only, the textbook loop's figure being the eager one)
            sides = (("textbook", textbook),) * (batch == batches[0] and not args.compile) + \
                (("handwritten", handwritten), ("convolab", engine))
            speeds = {}
            for side, fn in sides:
                per_epoch = fn(name, options, batch)
                speeds[side] = max(per_epoch[1:] or per_epoch)
                print(f"  {name} batch {batch} {side}: {', '.join(f'{s:,.0f}' for s in per_epoch)} img/s by epoch",
                      flush=True)
                # each side's figure as soon as it is measured: a part stopped at its limit keeps the sides done
                print("PARTIAL " + json.dumps({"model": name, "batch": batch, "compiled": bool(args.compile),
                                               side: round(speeds[side])}), flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            label = name + "".join(f" {k}={v}" for k, v in options.items()) \
                + (f" compiled ({args.compile_mode})" if args.compile else "")
            record = {"model": label, "batch": batch, **{k: round(v) for k, v in speeds.items()},
                      "convolab_vs_handwritten": round(speeds["convolab"] / speeds["handwritten"], 2)}
            if "textbook" in speeds:
                record["convolab_vs_textbook"] = round(speeds["convolab"] / speeds["textbook"], 2)
            print("RESULT " + json.dumps(record), flush=True)

if __name__ == "__main__":
    main()
