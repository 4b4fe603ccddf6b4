"""Data-parallel training on several processes through PyTorch's own engine (torch.distributed).

The CLI's launcher (`convolab train --nproc N`, convolab/cli/_launch.py) or torchrun starts the processes
and sets RANK, WORLD_SIZE and LOCAL_RANK; `Distributed.from_env` joins the process group (gloo on the CPU, NCCL
on CUDA). Every rank takes `idx[rank::world]` of each global batch, so the global batch and the
data order are those of one process; DDP averages the gradients, which equals the gradient of the
whole batch's mean loss.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

# How long a rank waits in a collective for the others: gloo's default, given to NCCL too (whose own is 10 minutes),
# so that ranks waiting while rank 0 alone unpacks a large tar or scores the unseen test split are not aborted
GROUP_TIMEOUT = timedelta(minutes=30)


def in_torchrun() -> bool:
    """True in a process started by torchrun (or any launcher that sets its variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch_env(name: str, default: int) -> int:
    """The whole number a launcher (torchrun, --nproc) sets in the environment variable `name` (RANK, WORLD_SIZE,
    LOCAL_RANK), `default` where it is unset or empty; one line where it holds something else (not int()'s
    traceback, from a stray `export RANK=abc`)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()):  # (int() takes other scripts' digits, not all: "²")
        raise ConfigError(f"the environment variable {name}={value!r} is not a whole number >= 0; torchrun (and "
                          f"`convolab train --nproc`) set it for each process: unset it (unset {name}) to run one "
                          "process")
    return int(value)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed:
        """Join the torchrun job this process belongs to; a plain process gets the world of 1."""
        if not in_torchrun() or launch_env("WORLD_SIZE", 1) <= 1:
            return cls()
        rank, world, local_rank = launch_env("RANK", 0), launch_env("WORLD_SIZE", 1), launch_env("LOCAL_RANK", 0)
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
        return cls(rank, world, local_rank)

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on a node: cuda:LOCAL_RANK."""
        return torch.device("cuda", self.local_rank) if self.enabled and device.type == "cuda" else device

    def check_batch_size(self, batch_size: int, resumed: bool = False) -> None:
        """One line when the processes cannot share the batch evenly: another batch size to try, or for a
        resumed run (whose batch cannot change) the process counts that divide it."""
        if batch_size % self.world_size:
            if resumed:
                counts = [n for n in range(2, min(batch_size, 64) + 1) if batch_size % n == 0][:6]
                fits = f"{' or '.join(map(str, counts))} processes, or " if counts else ""
                raise ConfigError(f"`batch_size` {batch_size} of the resumed run is not divisible by the "
                                  f"{self.world_size} processes that share each batch evenly, and cannot change; "
                                  f"run it on {fits}one")
            # the multiple below, unless it leaves each process one image (batch statistics need two): then above
            share = batch_size // self.world_size
            fit = max(share, 2) * self.world_size
            raise ConfigError(f"`batch_size` {batch_size} is not divisible by the {self.world_size} processes"
                              f" that share each batch evenly; try `batch_size` {fit}")

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch of indices."""
        return index[self.rank::self.world_size] if self.enabled else index

    def sum(self, *values: float | torch.Tensor) -> list[float]:
        """The sums over all ranks of a few numbers (one all-reduce)."""
        if not self.enabled:
            return [float(v) for v in values]
        on_gpu = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        device = torch.device("cuda", self.local_rank) if on_gpu else torch.device("cpu")
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def sum_on_device(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over all ranks of a tensor on this rank's device, without waiting for it on the host
        (an all-reduce queued as a kernel is; no copy back)."""
        if self.enabled:
            dist.all_reduce(value)
        return value

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (ranks must agree to stop at the same step)."""
        return bool(self.sum(float(flag))[0]) if self.enabled else flag

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value of a picklable object, on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value of a picklable object, by rank."""
        if not self.enabled:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BN running statistics, which each rank updates on its own shard) everywhere."""
        if self.enabled:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def wrap(self, model: nn.Module, outputs: nn.Module) -> nn.Module:
        """`outputs` (a module computing the training outputs of `model`) under DistributedDataParallel."""
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        # Auxiliary heads left out of the loss get no gradient: DDP must be told to look for them.
        unused = bool(getattr(model, "aux_names", ())) and not getattr(outputs, "want_aux", True)
        return DistributedDataParallel(outputs, device_ids=device_ids, find_unused_parameters=unused)

    def close(self, finished: bool = True) -> None:
        """Leave the process group. A rank that finished waits for the others first: one that tore its
        group down while rank 0 was still writing the run's files aborted now and then ("terminate
        called without an active exception", SIGABRT), which failed the whole job."""
        if self.enabled and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
