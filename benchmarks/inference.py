"""Inference images/s of convolab's folded, exported models against torchvision's model run every way
ours is run, plus torch.compile.

For googlenet_tv, resnet50 and inception_v3 at batch 1 and 32 on this machine's CPU, in one run, fp32,
NCHW, the same torch threads and ONNX Runtime intra-op threads (one per core) on every path:
- ours: PyTorch eager (as built, and with batch norm folded), TorchScript (folded, traced, frozen,
  optimize_for_inference) and ONNX Runtime (folded, exported by `convolab.export.export_onnx`, graph
  optimizations ALL, intra-op and inter-op thread spinning off so that its idle threads do not keep the
  cores busy after a run and slow the next path);
- torchvision's model of the same architecture (weights=None, eval): eager (as built, and with batch norm
  folded by the same function as ours: `tv-folded`, the like-for-like peer of our folded model), and exported
  to TorchScript
  and ONNX by the very same functions (its batch norm folded the same way where `fold_batchnorm` finds
  conv-bn pairs in it; the batch-norm layers counted before and after, "not folded" printed where none
  were), and `torch.compile` (inductor, its default mode with `torch._inductor.config.freezing = True`,
  PyTorch's recommended CPU inference setting; compiled anew and static (`dynamic=False`, dynamo reset) for
  each batch size before the timing, the compile time printed; skipped with the reason where it fails).
Without onnxruntime the ONNX paths are left out, said in a `skipped onnxruntime: ...` line.
Each path is checked against its PyTorch model before it is timed; the time per batch is the median of
the timed runs, the paths taking turns in an order that rotates each round (round r starts at path
r mod n, so no path always follows the same one). Ends with `ratio <model>-<path>-b<batch>-vs-<peer> <x>`
lines.

    python benchmarks/inference.py            # ~20-25 minutes on 2 cores (an estimate; 6 torch.compile builds)
    python benchmarks/inference.py --quick    # fewer repetitions: 4 min 6 s measured on 2 idle cores with 2
                                              # rounds at batch 32 (now 3, so longer; a cold first compile
                                              # took 132 s instead of 6 s)
    python benchmarks/inference.py --no-compile   # without the torch.compile peer
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torchvision

import convolab
from convolab._platform import cpu_name

try:
    import onnxruntime as ort
except ImportError as missing:  # (the other paths still run: the script says what it left out)
    ort, ORT_MISSING = None, str(missing)
from convolab.export import export_onnx, fold_batchnorm
from convolab.export.fold import count_batchnorm

TV = torchvision.models
MODELS = {  # convolab name: (torchvision constructor, input size)
    "googlenet_tv": (partial(TV.googlenet, weights=None, aux_logits=False, init_weights=False), 224),
    "resnet50": (partial(TV.resnet50, weights=None), 224),
    "inception_v3": (partial(TV.inception_v3, weights=None, aux_logits=False, init_weights=False), 299),
}
PATHS = ("torchvision", "tv-folded", "tv-torchscript", "tv-onnx", "tv-compile", "eager", "eager-folded", "torchscript",
         "onnx")
PEER_OF = {"eager": "torchvision", "eager-folded": "tv-folded", "torchscript": "tv-torchscript", "onnx": "tv-onnx"}


def time_per_batch(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of one call of each, after a warm-up call; the paths take turns, so that
    other work on the machine slows them alike, and round r starts at path r mod n (the order rotates),
    so that no path always follows the same one (what one path leaves behind lands on each in turn)."""
    times: dict[str, list[float]] = {path: [] for path in runs}
    for run in runs.values():  # warm-up
        run()
    order = list(runs)
    for r in range(rounds):
        start = r % len(order)
        for path in order[start:] + order[:start]:
            t0 = time.perf_counter()
            runs[path]()
            times[path].append(time.perf_counter() - t0)
    return {path: statistics.median(t) for path, t in times.items()}


def torchscript(model: torch.nn.Module, x: torch.Tensor) -> torch.jit.ScriptModule:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))
        return torch.jit.optimize_for_inference(traced)


def foldable(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The model with its batch norm folded as ours is, where `fold_batchnorm` can (else as it is), and what
    was folded: `fold_batchnorm` returns the model unchanged where it finds no conv-bn pair (torch.fx cannot
    trace it), so the batch-norm layers are counted before and after."""
    before = count_batchnorm(model)
    try:
        folded = fold_batchnorm(model)
    except Exception as err:
        return model, f"not folded: fold_batchnorm failed ({str(err).splitlines()[0][:80]})"
    after = count_batchnorm(folded)
    if before and after == before:
        return model, f"not folded: fold_batchnorm folded none of its {before} batch-norm layers"
    return folded, f"folded {before - after} of {before} batch-norm layers"


def compiled(model: torch.nn.Module, x: torch.Tensor) -> tuple[Callable[[], object] | None, str]:
    """torch.compile(model) run once on x (compiling), or None and why it could not be. Compiled with
    inductor's freezing on (`torch._inductor.config.freezing = True`, PyTorch's recommended setting for CPU
    inference: weights constant-folded and prepacked, conv-bn folded), for this compile only. Compiled anew for
    each batch size, static (`dynamic=False`, dynamo's caches reset first): compiled again for a second batch
    size, the same model got a shape-generic graph (dynamo's automatic dynamic shapes), not the one a user
    compiling for that batch size gets."""
    import torch._inductor.config as inductor_config

    start = time.perf_counter()
    was = inductor_config.freezing
    inductor_config.freezing = True
    torch._dynamo.reset()
    try:
        fn = torch.compile(model, dynamic=False)
        fn(x)
    except Exception as err:  # no C++ compiler, an unsupported op...
        return None, f"torch.compile failed: {str(err).splitlines()[0][:120]}"
    finally:
        inductor_config.freezing = was
    return partial(fn, x), f"compiled (freezing on) in {time.perf_counter() - start:.0f} s"


def onnx_session(model: torch.nn.Module, size: int, batch: int, folder: str, threads: int, tag: str = ""):

    path = Path(folder) / f"model{tag}-b{batch}.onnx"
    result = export_onnx(model, path, (3, size, size), batch_size=batch, fold=True)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no spinning: ORT's idle intra-op threads otherwise spin on the cores after run() returns and slow
    # whichever path runs next (~1.6x on 2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, result.max_abs_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (10 rounds at batch 1, 3 at batch 32)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile peer")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch and ONNX Runtime intra-op threads (default: the number of cores)")
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    if ort is None:
        print(f"skipped onnxruntime: {ORT_MISSING} (the ONNX paths, ours and torchvision's, left out)")

    print(f"peers: torchvision {torchvision.__version__} models of the same architectures (weights=None, eval), "
          "eager (as built, and with batch norm folded the same way as ours), exported to TorchScript and ONNX "
          "Runtime by the same functions as ours (batch norm folded the same way), and torch.compile (inductor, "
          "default mode, torch._inductor.config.freezing = True as PyTorch recommends for CPU inference; "
          "static, compiled anew for each batch size)" + (" [left out: --no-compile]" if args.no_compile else ""))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"onnxruntime {ort.__version__ if ort else '(none)'}; {torch.get_num_threads()} torch threads, "
          f"{threads} ONNX Runtime intra-op threads (ours and torchvision's sessions: graph optimizations ALL, "
          "inter-op 1, intra-op and inter-op spinning off so no idle thread keeps a core busy after a run)")
    print("order: the paths take turns, round r starting at path r mod n (the order rotates each round); "
          "median of the rounds")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        for name in args.models:
            make_peer, size = MODELS[name]
            torch.manual_seed(0)
            peer = make_peer().eval()
            ours = convolab.create_model(name).eval()
            folded = fold_batchnorm(ours)
            peer_folded, peer_fold = foldable(peer)
            for batch in args.batches:
                big = batch >= 8
                rounds = (3 if big else 10) if args.quick else (5 if big else 30)
                x = torch.randn(batch, 3, size, size)
                ts = torchscript(folded, x)
                check = (ts(x) - ours(x)).abs().max().item()
                peer_ts = torchscript(peer_folded, x)
                peer_check = (peer_ts(x) - peer(x)).abs().max().item()
                feed = {"input": x.numpy()}
                runs = {"torchvision": partial(peer, x), "tv-folded": partial(peer_folded, x),
                        "tv-torchscript": partial(peer_ts, x)}
                diff = peer_diff = float("nan")
                if ort is not None:
                    session, diff = onnx_session(ours, size, batch, folder, threads)
                    peer_session, peer_diff = onnx_session(peer, size, batch, folder, threads, tag="-tv")
                    runs["tv-onnx"] = partial(peer_session.run, None, feed)
                note = "left out"
                if not args.no_compile:
                    run_compiled, note = compiled(peer, x)
                    if run_compiled is not None:
                        runs["tv-compile"] = run_compiled
                runs |= {"eager": partial(ours, x), "eager-folded": partial(folded, x), "torchscript": partial(ts, x)}
                if ort is not None:
                    runs["onnx"] = partial(session.run, None, feed)
                if args.quick and big:
                    runs.pop("eager")
                times = time_per_batch(runs, rounds)
                for path, seconds in times.items():
                    rows.append((name, batch, path, batch / seconds, seconds * 1000,
                                 times["torchvision"] / seconds))
                print(f"  {name} b{batch}: checked onnx {diff:.1e}, torchscript {check:.1e} against PyTorch; "
                      f"torchvision's: onnx {peer_diff:.1e}, torchscript {peer_check:.1e} (batch norm "
                      f"{peer_fold}); "
                      f"tv-compile {note}", flush=True)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print(f"{'model':<14}{'batch':>6}  {'path':<14}{'images/s':>10}{'ms/batch':>11}{'vs torchvision':>16}")
    for name, batch, path, ips, ms, ratio in rows:
        print(f"{name:<14}{batch:>6}  {path:<14}{ips:>10.1f}{ms:>11.1f}{ratio:>15.2f}x")
    print()
    seconds = {(name, batch, path): batch / ips for name, batch, path, ips, _, _ in rows}
    for name, batch, path, _, _, ratio in rows:
        if path in ("eager-folded", "torchscript", "onnx"):
            print(f"ratio {name}-{path}-b{batch}-vs-torchvision {ratio:.2f}")
        if path in ("eager-folded", "torchscript", "onnx") and (name, batch, PEER_OF[path]) in seconds:
            like = seconds[(name, batch, PEER_OF[path])] / seconds[(name, batch, path)]
            print(f"ratio {name}-{path}-b{batch}-vs-{PEER_OF[path]} {like:.2f}")
    for name in args.models:
        for batch in args.batches:
            mine = [r for r in rows if r[0] == name and r[1] == batch and r[2] in PEER_OF]
            theirs = [r for r in rows if r[0] == name and r[1] == batch and r[2] not in PEER_OF]
            best, peer_best = max(mine, key=lambda r: r[3]), max(theirs, key=lambda r: r[3])
            print(f"ratio {name}-best-b{batch}-vs-torchvision {best[5]:.2f} ({best[2]})")
            print(f"ratio {name}-best-b{batch}-vs-best-peer {best[3] / peer_best[3]:.2f} ({best[2]} vs {peer_best[2]})")

if __name__ == "__main__":
    main()
