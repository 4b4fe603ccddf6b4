"""What a run changes in its process while it works, and gives back to its caller after: torch's random streams
(the run's own: its initialization, dropout and data order resume from them), its CPU threads (--threads), cuDNN's
benchmark mode on a GPU, the default dtype (a run computes in float32) and grad mode (a run trains, whatever block
its caller is in).

A Trainer used from Python leaves these as it found them, as timm's and torchvision's functions do: a caller's
`torch.manual_seed(2024)` followed by a random search over runs draws each trial's value anew (it drew the
same value after every run when each Trainer reseeded the global stream and kept it).

These settings are the process's, not a thread's: Trainers made or fitted in several threads at once (a web app's,
a job queue's) take turns at them under `STREAMS`, and the caller's come back when the last of them is done.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .device import check_threads


def random_states() -> tuple[torch.Tensor, list[torch.Tensor] | None, int]:
    """torch's global random streams: the CPU's, each GPU's where CUDA is initialized, and the seed CUDA's take
    when it is initialized later (the last torch.manual_seed's, which seeds them lazily)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda, torch.initial_seed()


def set_random_states(states: tuple[torch.Tensor, list[torch.Tensor] | None, int]) -> None:
    """Put back the streams `random_states` took; where CUDA was initialized since, its GPUs get the recorded seed."""
    cpu, cuda, seed = states
    torch.set_rng_state(cpu)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        else:  # (initialized since: the streams it would have had, seeded as the caller last seeded)
            torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """float32 as torch's default dtype inside (a caller's float64 default built a model of doubles, which the
    float32 batches could not go through); the caller's default after."""
    caller = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(caller)


# Held while a run seeds torch's global streams and draws from them (its data split, its initial weights: one
# build at a time, so that a seed gives the same run in any thread) and while a block swaps the process's settings.
STREAMS = threading.RLock()  # (reentrant: a block inside another of its own thread)
_caller: dict = {"inside": 0, "settings": None}  # the blocks inside, of all threads; the settings the first found


def _enter() -> tuple:
    """(Under STREAMS) the settings a block finds, kept as the caller's when it is the first inside; float32."""
    found = random_states(), torch.get_num_threads(), torch.backends.cudnn.benchmark, torch.get_default_dtype()
    if not _caller["inside"]:
        _caller["settings"] = found
    _caller["inside"] += 1
    torch.set_default_dtype(torch.float32)
    return found


def _leave(found: tuple) -> None:
    """(Under STREAMS) the settings as the block found them; the caller's where it is the last out (a block of
    another thread that started in between found a run's, and must not leave them to the caller), and float32
    while another is inside."""
    _caller["inside"] -= 1
    last = not _caller["inside"]
    streams, threads, benchmark, dtype = _caller["settings"] if last else found
    set_random_states(streams)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = benchmark
    if last:
        torch.set_default_dtype(dtype)
        _caller["settings"] = None


def streams_held(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` called under STREAMS: one at a time in the process (it seeds torch's global streams and draws)."""
    @functools.wraps(function)
    def held(*args: Any, **kwargs: Any) -> Any:
        with STREAMS:
            return function(*args, **kwargs)
    return held


@contextlib.contextmanager
def callers_kept() -> Iterator[None]:
    """float32 inside; after, the caller's random streams, threads and dtype as they were (a model built inside
    draws its initial weights from them). The block holds STREAMS: its seeding and drawing are one thread's."""
    with STREAMS:
        found = _enter()
        try:
            yield
        finally:
            _leave(found)


class _QuietThreads(logging.Filter):
    """Drops the records of the threads inside a `quiet` block (a logger's filter runs in the thread that logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[int, int] = {}  # thread id -> its blocks inside

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.get_ident() not in self.threads


_QUIET = _QuietThreads()
_QUIET_LOCK = threading.Lock()
_quieted: dict = {"inside": 0, "warnings": None}  # the blocks inside, of all threads; the first one's catch_warnings


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """convolab's log records of the block's thread left unsaid (a filter on its logger, not logging.disable: the
    host's records, and other threads', go on), and warnings: process-wide, ignored from the first block in, of any
    thread, until the last out puts the caller's filters back (each block putting back the filters it found left
    another's ignore-all in place for good)."""
    me = threading.get_ident()
    with _QUIET_LOCK:
        if not _quieted["inside"]:
            logging.getLogger("convolab").addFilter(_QUIET)
            _quieted["warnings"] = kept = warnings.catch_warnings()
            kept.__enter__()
            warnings.simplefilter("ignore")
        _quieted["inside"] += 1
        _QUIET.threads[me] = _QUIET.threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET.threads[me] -= 1
            if not _QUIET.threads[me]:
                del _QUIET.threads[me]
            _quieted["inside"] -= 1
            if not _quieted["inside"]:
                _quieted["warnings"].__exit__(None, None, None)
                _quieted["warnings"] = None
                logging.getLogger("convolab").removeFilter(_QUIET)


@dataclass
class ProcessState:
    """A run's own settings of the process, applied while it works (`applied`) and the caller's put back after.
    `threads`: --threads (None: the caller's)."""

    threads: int | None = None
    cudnn_benchmark: bool = False  # (on a GPU: fixed input shapes, so cuDNN times its algorithms once)
    _random: Any = None  # the run's random streams between its calls (None: none yet, the caller's are used)
    _depth: int = field(default=0, repr=False)

    @contextlib.contextmanager
    def applied(self, train: bool = False) -> Iterator[None]:
        """The run's streams, threads and float32 in place of the caller's, outside a caller's inference_mode (grad
        on too, with `train`); nested calls (a checkpoint written while fitting) change nothing."""
        if self._depth:
            with torch.inference_mode(False), torch.enable_grad() if train else contextlib.nullcontext():
                yield
            return
        check_threads(self.threads)  # (before any change: a --threads of thousands is refused, not started)
        with contextlib.ExitStack() as stack:
            if not train:  # (a build, a checkpoint: its seeding and drawing are one thread's; a fit holds it to swap)
                stack.enter_context(STREAMS)
            with STREAMS:
                found = _enter()
                if self._random is not None:
                    set_random_states(self._random)
                if self.threads:
                    torch.set_num_threads(self.threads)
                if self.cudnn_benchmark:
                    torch.backends.cudnn.benchmark = True
                self._depth += 1
            try:
                # (inference_mode off: a model built inside a caller's inference_mode block had inference tensors)
                with torch.inference_mode(False), torch.enable_grad() if train else contextlib.nullcontext():
                    yield
            finally:
                with STREAMS:
                    self._depth -= 1
                    self._random = random_states()
                    _leave(found)


__all__ = ["STREAMS", "ProcessState", "callers_kept", "float32_default", "quiet", "random_states", "set_random_states",
           "streams_held"]
