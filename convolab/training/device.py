"""The device a run trains on: which one, its clock, and its mixed precision."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator

import torch

from .._platform import usable_cores
from ..errors import ConfigError, FieldError
from .config import CUDA_GRAPH_MODES

log = logging.getLogger("convolab")


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when there is one), `cpu`, `cuda` or `cuda:N` (N a device index this machine has)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps" or name.startswith("mps:"):  # (a Mac's GPU: torch has it, but convolab's paths are untried there)
        raise ConfigError(f"`device` {name}: convolab does not train on Apple GPUs (MPS) yet; use `device` cpu, or "
                          "auto (a CUDA GPU where there is one, else the CPU)")
    if name != "cuda" and not name.startswith("cuda:"):
        raise ConfigError(f"`device` must be auto, cpu, cuda or cuda:N, got {name!r}")
    index = name[len("cuda:"):] if name != "cuda" else None
    if index is not None and not (index.isascii() and index.isdigit()):
        raise ConfigError(f"`device` {name}: the CUDA device index must be a non-negative whole number, "
                          f"e.g. cuda:0, got {index!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"`device` {name} was asked for but no CUDA device is available; use `device` cpu or auto")
    if index is not None and int(index) >= (count := torch.cuda.device_count()):
        raise ConfigError(f"`device` {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                          f"(cuda:0 to cuda:{count - 1}); give one of them, or `device` cuda")
    return torch.device("cuda" if index is None else f"cuda:{int(index)}")


THREADS_PER_CORE = 4  # --threads above this many a core: refused (each waits for a core; thousands crash OpenMP)


def device_clock(device: torch.device) -> float:
    """The host clock once the device has finished the work queued so far.

    CUDA runs kernels asynchronously: without waiting, a clock read after `loss.backward()` would stop
    while the step is still queued, and images/s would count unfinished work.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the device runs it fast (CUDA), fp16 only on CUDA; 'auto' leaves the CPU in fp32."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("`amp` fp16 needs a CUDA device; use `amp` bf16 on the CPU (a run trained with `amp` "
                              "fp16 continues on a CUDA device only: its precision cannot change when it is resumed)")
        return torch.float16
    return torch.bfloat16


def check_compiler(device: torch.device) -> None:
    """torch.compile on the CPU builds C++ (inductor), and on CUDA Triton builds its kernels' launcher with a C
    compiler ($CC, else gcc, else clang, as Triton looks): without one it fails at the first step, after the run
    folder is made, in a traceback of a hundred lines."""
    if device.type == "cuda":
        if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")):
            raise ConfigError("`compile` on CUDA needs a C compiler (Triton builds the compiled step's launcher with "
                              "it) and none is found (gcc, clang or $CC); install one, or leave out `compile`")
        return
    if device.type != "cpu":
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # (private; absent from older torch: not checked)
    except ImportError:
        return
    try:
        get_cpp_compiler()
    except Exception as err:  # noqa: BLE001  torch's InvalidCxxCompiler, by name only in a private module
        if type(err).__name__ != "InvalidCxxCompiler":
            raise
        raise ConfigError("`compile` on the CPU needs a C++ compiler (torch builds the compiled step with it) and "
                          "none works here (g++ or $CXX); install one, or leave out `compile`") from None


class _NoCudaRuntimeNotice(logging.Filter):
    """torch's "No CUDA runtime is found, using CUDA_HOME=..." (torch.utils.cpp_extension, read while inductor
    builds a CPU step on a machine with a CUDA toolkit but no GPU): it tells a CPU run nothing; only it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


NO_CUDA_RUNTIME_NOTICE = _NoCudaRuntimeNotice()


def start_compiling(device: torch.device, mode: str) -> None:
    """Before a --compile run builds anything: a C++ compiler on the CPU (`check_compiler`), torch's notice of no
    CUDA runtime silenced, and one line where --compile-mode asks for CUDA graphs that `device` cannot replay."""
    check_compiler(device)
    logging.getLogger("torch.utils.cpp_extension").addFilter(NO_CUDA_RUNTIME_NOTICE)  # (added once)
    if mode in CUDA_GRAPH_MODES and device.type != "cuda":
        alike = "default" if mode == "reduce-overhead" else f"{mode}-no-cudagraphs"
        log.info("`compile_mode` %s replays the step as CUDA graphs, which need a CUDA device: on %s it compiles as "
                 "`compile_mode` %s does", mode, device.type, alike)


def check_threads(threads: int | None) -> None:
    """--threads no more than THREADS_PER_CORE a core (thousands fail to start: a crash inside OpenMP)."""
    cores = usable_cores()
    if threads and threads > THREADS_PER_CORE * cores:
        raise FieldError("threads", f"{threads} is more than {THREADS_PER_CORE} threads a core on this machine's "
                         f"{cores} cores; give `threads` {THREADS_PER_CORE * cores} or fewer ({cores}, one a core, is "
                         "the fastest)")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed precision in `dtype` on `device`; None: full precision, inside a caller's autocast region too. The
    casts autocast keeps are dropped on the way out: in a caller's region they outlived the step (autocast drops
    them when its outermost region ends) and the next steps' forwards read the weights before the optimizer's
    updates (a run learned nothing)."""
    if dtype is None and not autocasting(device):
        yield
        return
    try:
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            yield
    finally:
        torch.clear_autocast_cache()


def without_callers_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """A caller's autocast region for `device`'s kind closed while a run trains: its config says the precision
    (every op of the step as alone, the loss and the batch transforms too)."""
    return torch.autocast(device_type=device.type, enabled=False) if autocasting(device) else contextlib.nullcontext()


def autocasting(device: torch.device) -> bool:
    """Whether a caller's autocast region is open for `device`'s kind."""
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # (torch before 2.4: no device argument)
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


__all__ = ["THREADS_PER_CORE", "autocast", "autocasting", "check_compiler", "check_threads", "device_clock",
           "resolve_amp", "resolve_device", "start_compiling", "without_callers_autocast"]
