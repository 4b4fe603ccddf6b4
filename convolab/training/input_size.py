"""The input sizes a model's layers take: an --image-size they cannot take is refused before any training, naming
the sizes that work."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import FieldError
from ..models import create_model
from ..models._modes import modes_kept
from ..models._probe import probe_forward
from .checkpoint import runs_at


def check_input_size(model: nn.Module, name: str, in_chans: int, size: int, default_size: int,
                     device: torch.device) -> None:
    """Refuse an input size the model's layers cannot take, before any training: one forward pass of a
    zero image through every head training runs (auxiliary and task heads too); on failure the sizes that
    work are named: the smallest (doubling, then bisecting towards the model's own size, which works) and, for a
    model whose head is built for its size (lenet5's flatten: 28-31 px), the largest, with the option that
    builds it for another size. A failure the model's own size shares is not about the size."""
    def fits(px: int) -> bool:
        return runs_at(model, in_chans, px, device, every_output=True)

    with modes_kept(model):  # (each module's own mode after: a BatchNorm the caller froze stays frozen)
        model.eval()
        if fits(size):
            return
        if not fits(default_size):  # not a matter of size: the line count_macs says (a model of the user's own,
            # which has no forward_outputs, of other channels than the data's: an AttributeError before)
            probe_forward(model, (in_chans, size, size), run=every_output)
        top = None if fits(2 * default_size) else last_fitting(fits, default_size, 2 * default_size)
        rebuild = "" if top is None else ", or `model_options` img_size=N to build it for N px"
        if size > default_size:
            most = f", at most {top} px" if top is not None else ""
            raise FieldError("image_size", f"{size} does not fit {name} (its layers are built for {default_size} "
                                           f"px{most}); give `image_size` {default_size}{rebuild}")
        low, high, probe = size, default_size, size * 2
        while probe < default_size:
            if fits(probe):
                high = probe
                break
            low, probe = probe, probe * 2
        while high - low > 1:  # low fails, high works
            mid = (low + high) // 2
            low, high = (low, mid) if fits(mid) else (mid, high)
        if runs_at(model, in_chans, size, device):  # the main path takes it: the other heads do not
            aux = ", or leave out aux_logits" if getattr(model, "aux_names", None) else ""
            raise FieldError("image_size", f"{size} is too small for {name}'s other heads (they need at least "
                                           f"{high} px); give `image_size` {high} or more{aux}")
        if top is not None:  # (not "or more": sizes above `top` are refused too)
            raise FieldError("image_size", f"{size} is too small for {name} (its layers take {high}-{top} px); give "
                                           f"`image_size` {high}{rebuild}")
        raise FieldError("image_size", f"{size} is too small for {name} (its layers need at least {high} px); "
                                       f"give `image_size` {high} or more")


def every_output(model: nn.Module, x: torch.Tensor):
    """Every head training runs (`forward_outputs`), or the one output of a model without them."""
    return model.forward_outputs(x) if hasattr(model, "forward_outputs") else model(x)


def check_size_before_data(name: str, options: dict, size: int | None, device: torch.device) -> bool:
    """`check_input_size` on the named model (its own channels and classes) before the data are read: a size its
    layers cannot take is refused at once, not after a whole archive was decoded at that size (42 s for the
    CIFAR-10 tar, before). Nothing to check without --image-size, or for a model that names no input size of its
    own (the data's size is its size). Whether it probed (the size fits: the run need not probe it again)."""
    if not size:
        return False
    model = create_model(name, **options)  # (its own classes: a bad option's line names only what was given)
    data_cfg = getattr(model, "data_config", None)
    if data_cfg is None or size == data_cfg.input_size[-1]:
        return False
    check_input_size(model.to(device), name, data_cfg.input_size[0], size, data_cfg.input_size[-1], device)
    return True


def last_fitting(fits: Callable[[int], bool], works: int, fails: int) -> int:
    """The largest size in [works, fails) that fits, `works` fitting and `fails` not (bisection)."""
    while fails - works > 1:
        mid = (works + fails) // 2
        works, fails = (mid, fails) if fits(mid) else (works, mid)
    return works
