"""Optimizers with decay-free norm/bias groups, and learning-rate schedules as pure functions of the step."""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError
from .recipes import RECIPES

if TYPE_CHECKING:
    from .config import TrainConfig

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle")
WARMUP_MODES = ("linear", "constant")
CONSTANT_WARMUP = 0.1  # a constant warm-up's share of the rate: He et al. 2015's 0.01 before 0.1 (ResNet-110)
log = logging.getLogger("convolab")
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 0.045}  # rmsprop: Inception-v3's, with eps 1.0


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False) -> list[dict]:
    """Two groups: weights with decay, and (unless asked) 1-D params (norm scales, biases) without."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 and not decay_norm_and_bias else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(groups: list[dict], name: str, lr: float, momentum: float = 0.9,
                    nesterov: bool = False) -> torch.optim.Optimizer:
    """The optimizer `name` over `groups`: `momentum` is SGD's and RMSprop's momentum, Adam's and AdamW's
    beta1 (beta2 0.999, PyTorch's); `nesterov` applies to SGD with momentum, and is said to be ignored
    elsewhere."""
    if nesterov and (name != "sgd" or momentum == 0):
        log.warning("`nesterov` is ignored: it is Nesterov momentum of sgd with `momentum` above 0 (here %s, "
                    "momentum %g)", name, momentum)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    if name == "rmsprop":  # Inception-v3's choice: decay 0.9, eps 1.0, as TensorFlow runs RMSProp
        return RMSpropTF(groups, lr=lr, alpha=0.9, eps=1.0, momentum=momentum)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow runs it, which Inception-v3's "decay 0.9, epsilon 1.0" means (timm's RMSpropTF, its
    defaults): the mean square starts at 1 and `eps` is added inside the square root; the momentum buffer holds
    lr x step, and weight decay is added to the gradient. torch's RMSprop starts the mean at 0 and adds eps outside
    the root: at eps 1.0 its steps were 0.71x-1.37x these.

        ms = alpha * ms + (1 - alpha) * g^2;  buf = momentum * buf + lr * g / sqrt(ms + eps);  p -= buf
    """

    def __init__(self, params, lr: float, alpha: float = 0.9, eps: float = 1.0, momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every parameter of a group at once (torch's _foreach ops: a few kernels a group, not a few a
        parameter, as torch's own optimizers run)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            square_avgs = [self._buffer(p, "square_avg", torch.ones_like) for p in params]
            torch._foreach_mul_(square_avgs, group["alpha"])  # ms = alpha * ms + (1 - alpha) * g^2
            torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - group["alpha"])
            roots = torch._foreach_add(square_avgs, group["eps"])
            torch._foreach_sqrt_(roots)
            if group["momentum"] > 0:
                bufs = [self._buffer(p, "momentum_buffer", torch.zeros_like) for p in params]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_addcdiv_(bufs, grads, roots, value=group["lr"])
                torch._foreach_sub_(params, bufs)
            else:
                torch._foreach_addcdiv_(params, grads, roots, value=-group["lr"])
        return loss

    def _buffer(self, p: torch.Tensor, name: str, make) -> torch.Tensor:
        """The state `name` of `p`, made by `make` (ones, zeros) at its first step."""
        state = self.state[p]
        if name not in state:
            state[name] = make(p, memory_format=torch.preserve_format)
        return state[name]


def optimizer_of(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    """`build_optimizer` as `config` chooses. A recipe's values suit its own optimizer: with another one (--recipe
    fast --optimizer adam) the recipe's Nesterov momentum is not the user's, to be told it is ignored, and the
    recipe's rate, which the run keeps unless --lr is given (SGD's 0.4 made Adam diverge), is said once."""
    nesterov, recipe = config.nesterov, RECIPES.get(config.recipe or "")
    if recipe is not None and config.optimizer != recipe.values.get("optimizer", config.optimizer):
        nesterov = nesterov and not recipe.values.get("nesterov")
        if config.lr is not None and config.lr == recipe.values.get("lr"):
            log.warning("`recipe` %s's lr %g is its %s's: `optimizer` %s trains at it unless `lr` is given "
                        "(its usual rate: %g)", recipe.name, config.lr, recipe.values["optimizer"], config.optimizer,
                        dataclasses.replace(config, lr=None).base_lr)  # (the model's registered rate, else the
            # optimizer's default: what the run would train at with neither the recipe's rate nor --lr)
    return build_optimizer(groups, config.optimizer, config.base_lr, config.momentum, nesterov)


def counted(n: int, noun: str) -> str:  # ("1 epoch", "2 epochs")
    return f"{n} {noun}{'' if n == 1 else 's'}"


def warmup_length(config: TrainConfig, steps_per_epoch: int, say: bool = False) -> int:
    """The warm-up's steps: `--warmup-epochs`, at most half the run (`say`: one warning when that cuts a warm-up
    given, the user's or a recipe's; the default epoch of warm-up, halved in a one-epoch run, is as documented)."""
    asked, total = round(config.warmup * steps_per_epoch), steps_per_epoch * config.epochs
    recipes = RECIPES[config.recipe].values.get("warmup_epochs") if config.recipe in RECIPES else None
    if say and asked > total // 2 and config.warmup_epochs is not None:
        epochs, whose = total // 2 / steps_per_epoch, f" ({config.recipe}'s)" if config.warmup_epochs == recipes else ""
        log.warning("`warmup_epochs` %g%s is over half of the %s: the warm-up takes %s, %.3g epoch%s",
                    config.warmup_epochs, whose, counted(config.epochs, "epoch"), counted(total // 2, "step"),
                    epochs, "" if epochs == 1 else "s")
    return min(asked, total // 2)


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0,
              milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1,
              final_factor: float = 0.0, warmup_mode: str = "linear") -> float:
    """Multiplier of the base learning rate at `step` (0-based) of `total_steps`.

    A pure function, so a resumed run needs no scheduler state. Warm-up rises linearly to 1 over `warmup_steps`
    (1/W, 2/W, ... 1), or with `warmup_mode` "constant" stays at CONSTANT_WARMUP over them; the schedule then runs
    over the steps after it, as torch's SequentialLR(LinearLR, ...) runs its second scheduler: `milestones` are
    fractions of those steps (`step` uses the first only), cosine falls from 1 to `final_factor` over them, and
    onecycle, the airbench/one-cycle tail (not torch's OneCycleLR, whose rise and fall are cosine), falls linearly
    to zero at the run's end (its last step at 1/(total - W)).
    """
    if step < warmup_steps:
        return CONSTANT_WARMUP if warmup_mode == "constant" else (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** int(progress >= milestones[0])
    if schedule == "multistep":
        return gamma ** sum(progress >= m for m in milestones)
    if schedule == "cosine":
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":  # linear decay to zero after warm-up (the airbench/one-cycle tail)
        return final_factor + (1 - final_factor) * (1 - progress)
    raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


class ModelEma:
    """Exponential moving average of a model's weights for evaluation: every floating-point entry of its state,
    BatchNorm's running statistics too, averaged (as timm's ModelEmaV2 does); integer ones (BN's batch count)
    copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # One fused kernel per dtype group (torch._foreach_*), not one launch per tensor: on a GPU the
        # per-tensor loop cost more than the step of a small network.
        pairs = list(zip(self.module.state_dict().values(), model.state_dict().values()))
        floats = [(e, v) for e, v in pairs if e.dtype.is_floating_point]
        others = [(e, v) for e, v in pairs if not e.dtype.is_floating_point]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [v for _, v in floats], 1 - self.decay)
        if others:
            torch._foreach_copy_([e for e, _ in others], [v for _, v in others])
