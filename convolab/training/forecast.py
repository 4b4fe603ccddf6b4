"""What a run will cost, said before it starts: a warning where the images are resized far from their own
size, a refusal where the estimated memory would not fit on the device.

The estimate is arithmetic on one forward pass of one image: MACs from torch's FlopCounterMode, and the
training memory as the weights, their gradients and optimizer state plus every layer's output kept for the
backward pass (the sum of the leaf modules' output sizes) times the batch. Where the run warns, a short timed
probe (two training steps at a small batch, with the random state, batch-norm statistics and gradients put
back afterwards) turns the MACs into seconds per epoch on this device.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError, FieldError
from ..models._modes import modes_kept
from ..models._probe import probe_forward

try:
    import resource
except ImportError:  # (Windows)
    resource = None

log = logging.getLogger("convolab")

FAR = 2.0  # an image side this many times its own (4x the pixels) or more is worth a word before training
PROBE_BATCH = 8
HEAVY_MACS = 1e12  # an epoch of more multiply-adds than this (forward and backward) is worth a word: 10 s or more
# The backward pass needs working memory beside the saved outputs: peak RSS of a training step on the CPU was
# 1.32-1.41x the saved outputs plus weights (resnet20, googlenet_small at 32 px, densenet121 at 64, resnet18 at 224)
BACKWARD = 1.4


@dataclass(frozen=True)
class Cost:
    """A run's estimate: MACs of one image's forward pass, the bytes each image keeps for the backward pass (with
    its working memory, BACKWARD), and the bytes of weights, gradients and optimizer state."""

    macs: int  # per image, forward
    activation_bytes: int  # per image: layer outputs kept for the backward pass
    fixed_bytes: int  # weights, gradients and optimizer state

    def training_bytes(self, batch: int) -> int:
        """Estimated bytes to train at `batch` images a step: the fixed bytes plus `batch` images' activations."""
        return self.fixed_bytes + batch * self.activation_bytes

    def batch_that_fits(self, available: int) -> int:
        """The largest batch whose `training_bytes` fit in `available` bytes; 0 where not even the fixed bytes do."""
        return max(0, (available - self.fixed_bytes) // max(1, self.activation_bytes))


def main_output(model: nn.Module, x: torch.Tensor):
    """The forward pass a training step makes first (`model(x)`), for `probe_forward`."""
    return model(x)


def estimate_cost(model: nn.Module, in_chans: int, size: int, device: torch.device, value_bytes: int = 4,
                  optimizer_slots: int = 1) -> Cost:
    """MACs and training memory of one image at `size` (value_bytes 2 under bf16/fp16 autocast); the image is made
    where the model's parameters live (`device`, where the run put them). A model that does not take it is one
    ConfigError line (`probe_forward`). With gradient checkpointing on, the blocks' activations are counted as
    the backward pass holds them: each block's output kept, the inside of one block at a time."""
    blocks = [m for m in model.modules() if getattr(m, "grad_checkpointing", False)]
    owner = {id(leaf): id(block) for block in blocks for leaf in block.modules()}
    values: dict[int | None, int] = {}  # outputs kept (None), and recomputed inside each checkpointed block

    def count(module, inputs, output, block=False):
        shared = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
        key = None if block else owner.get(id(module))  # (a block's own output is kept for the backward pass)
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in shared:  # not in place, no view
                values[key] = values.get(key, 0) + t.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    hooks += [m.register_forward_hook(functools.partial(count, block=True)) for m in blocks]
    try:  # (a model that does not take the images: one line, as count_macs says it, not torch's error)
        with FlopCounterMode(display=False) as flops:
            probe_forward(model, (in_chans, size, size), run=main_output)
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = 4 * (params + trainable * (1 + optimizer_slots))
    outputs = values.pop(None, 0) + max(values.values(), default=0)  # (the inside of one block at a time)
    return Cost(macs=flops.get_total_flops() // 2, activation_bytes=int(BACKWARD * outputs * value_bytes),
                fixed_bytes=fixed)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process on `device`: the GPU's free memory, or the host's MemAvailable, and less where
    this process's cgroup (a container's or Slurm job's memory limit) or its address-space limit (`ulimit -v`)
    leaves less: beyond those the run is killed without a word (the OOM killer) or fails to allocate."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return min([free, *limits_left()])


def limits_left(proc: str = "/proc", cgroups: str = "/sys/fs/cgroup") -> list[int]:
    """Bytes left under this process's memory cgroup (v2: memory.max - memory.current; v1: memory.limit_in_bytes -
    memory.usage_in_bytes) and under its address-space limit (RLIMIT_AS - VmSize); none where there is no limit
    or nothing can be read (not Linux)."""
    left = []
    try:
        with open(f"{proc}/self/cgroup") as f:
            lines = [line.strip().split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        lines = []
    for _, controllers, path in lines:
        if controllers == "":  # v2's one hierarchy
            files = (f"{cgroups}{path}/memory.max", f"{cgroups}{path}/memory.current")
        elif "memory" in controllers.split(","):
            files = (f"{cgroups}/memory{path}/memory.limit_in_bytes", f"{cgroups}/memory{path}/memory.usage_in_bytes")
        else:
            continue
        try:
            limit, used = (Path(name).read_text().strip() for name in files)
            if limit != "max" and int(limit) < 2**60:  # (v1 writes "no limit" as a number near 2**63)
                left.append(max(0, int(limit) - int(used)))
        except (OSError, ValueError):
            continue
    try:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0] if resource is not None else resource
        if soft is not None and soft != resource.RLIM_INFINITY:
            with open(f"{proc}/self/status") as f:
                size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            left.append(max(0, soft - size))
    except (OSError, StopIteration, ValueError):
        pass
    return left


def probe_seconds_per_image(model: nn.Module, in_chans: int, size: int, device: torch.device,
                            channels_last: bool) -> float:
    """Seconds per image of a training step (forward and backward) at a small batch: the second of two
    steps, timed. The model's batch-norm statistics, gradients, modes and the random state are as they were."""
    buffers = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tracked = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    seconds = 0.0
    with modes_kept(model), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        x = torch.randn(PROBE_BATCH, in_chans, size, size, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model.train()
        for _ in range(2):
            started = time.perf_counter()
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            out.float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    model.load_state_dict({**buffers, **tracked}, strict=False)
    return seconds / PROBE_BATCH


def free_share(free: int | None) -> float:
    """A quarter of the free memory: a run needing more is worth a word even at its images' own size."""
    return float("inf") if free is None else free / 4


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_batch_statistics(model: nn.Module, name: str, batch_size: int, processes: int, in_chans: int,
                           size: int, device: torch.device) -> None:
    """A step of one image a process is refused where a BatchNorm layer would see one value a channel (BatchNorm1d
    always; BatchNorm2d on a 1 x 1 map at the input size, as googlenet_small's last stage at 28 px): batch statistics
    of one value raise at the first step, after the run folder is made, not where the batch is chosen."""
    if batch_size // processes >= 2:
        return
    single = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    if not single:
        seen: list[nn.Module] = []

        def one_value(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            if inputs[0][0, 0].numel() == 1:  # (one image's one channel: the values a channel has per image)
                seen.append(module)

        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        hooks = [m.register_forward_pre_hook(one_value) for m in norms]
        try:  # (in eval mode: running statistics untouched)
            probe_forward(model, (in_chans, size, size), run=main_output)
        finally:
            for h in hooks:
                h.remove()
        single = seen
    if single:
        kind = "BatchNorm1d" if isinstance(single[0], nn.BatchNorm1d) else \
            f"{type(single[0]).__name__} on a 1 x 1 map at {size} px"
        a_process = " (2 a process)" if processes > 1 else ""
        raise FieldError("batch_size", f"{batch_size} leaves each process 1 image a step, but {name or 'the model'}'s "
                                       f"{kind} layers need 2 or more for their batch statistics; give "
                                       f"`batch_size` {2 * processes} or more{a_process}")


def check_cost(model: nn.Module, name: str, in_chans: int, size: int, native: int, batch: int, images: int,
               device: torch.device, amp: bool, channels_last: bool, optimizer: str, memory_check: bool,
               say: bool = True) -> Cost:
    """Refuse a run whose estimated memory exceeds the device's free memory (unless not `memory_check`);
    warn, with a timed probe, before one whose images are resized FAR times their side or more where the epoch
    is heavy (over HEAVY_MACS, or a quarter of the free memory)."""
    cost = estimate_cost(model, in_chans, size, device, 2 if amp else 4, 2 if optimizer in ("adam", "adamw") else 1)
    need, free = cost.training_bytes(batch), available_memory(device)
    if memory_check and free is not None and need > free:
        fits = cost.batch_that_fits(free)
        advice = (f"lower `batch_size` to {fits} or less" if fits else "no batch fits") + \
            (" or give a smaller `image_size`" if size > native else "")
        raise ConfigError(f"{name} at {size} px, batch {batch}, would need about {gib(need)} of memory to train "
                          f"({cost.macs / 1e9:.2f} G MACs an image), more than the {gib(free)} free on "
                          f"{device.type}: {advice}, or pass `memory_check=False` to try anyway")
    heavy = 3 * cost.macs * images > HEAVY_MACS or need > free_share(free)
    if say and size >= FAR * native and heavy:
        per_image = probe_seconds_per_image(model, in_chans, size, device, channels_last)
        log.warning("%s resizes the %d px images to %d px (%.0fx the pixels): %.2f G MACs an image, about %s of "
                    "memory at batch %d and about %s an epoch on %s (timed on %d images); give `image_size` to "
                    "train smaller", name, native, size, (size / native) ** 2, cost.macs / 1e9, gib(need), batch,
                    duration(per_image * images), device.type, PROBE_BATCH)
    return cost


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["Cost", "available_memory", "check_cost", "estimate_cost", "limits_left", "probe_seconds_per_image"]
