"""What a run changes in its process while it works, and gives back to its caller after: torch's random streams
(the run's own: its initialization, dropout and data order resume from them), its CPU threads (--threads), cuDNN's
benchmark mode on a GPU, the default dtype (a run computes in float32) and grad mode (a run trains, whatever block
its caller is in).

A Trainer used from Python leaves these as it found them, as timm's and torchvision's functions do: a caller's
`torch.manual_seed(2024)` followed by a random search over runs draws each trial's value anew (it drew the
same value after every run when each Trainer reseeded the global stream and kept it).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


@contextlib.contextmanager
def callers_kept() -> Iterator[None]:
    """float32 inside (`float32_default`); after, the caller's random streams as they were too (a model built
    inside draws its initial weights from them)."""
    streams = random_states()
    try:
        with float32_default():
            yield
    finally:
        set_random_states(streams)


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
        caller_random, caller_threads = random_states(), torch.get_num_threads()
        caller_benchmark = torch.backends.cudnn.benchmark
        if self._random is not None:
            set_random_states(self._random)
        if self.threads:
            torch.set_num_threads(self.threads)
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self._depth += 1
        try:
            # (inference_mode off: a model built inside a caller's inference_mode block had inference tensors)
            with float32_default(), torch.inference_mode(False), \
                    torch.enable_grad() if train else contextlib.nullcontext():
                yield
        finally:
            self._depth -= 1
            self._random = random_states()
            set_random_states(caller_random)
            if torch.get_num_threads() != caller_threads:
                torch.set_num_threads(caller_threads)
            torch.backends.cudnn.benchmark = caller_benchmark


__all__ = ["ProcessState", "callers_kept", "float32_default", "random_states", "set_random_states"]
