"""AutoAugment, RandAugment and TrivialAugmentWide on a whole batch, every image with its own draw.

The policies, operations and magnitude ranges are torchvision's (`torchvision.transforms.v2`: its
`_AUGMENTATION_SPACE` tables and AutoAugment's sub-policies, read from the library, not copied). What is our
own is how they run: torchvision draws one operation and one magnitude per call, so a batched tensor gets a
single draw for all of its images, and per image it takes a Python loop; kornia draws the parameters per image
but picks the operations once per call. `benchmarks/augment_policies.py` measures all of them, each as a share
of a resnet20 training step (on 2 CPU threads at batch 256 the per-image loop costs 5.7-10.5% of the step,
ours 0.6-1.1%). Here each image draws its own operation(s), magnitude and sign, and each operation runs once
per batch on the images that drew it (the geometric ones together, as one `grid_sample`), on the batch's
device; on a GPU, on the whole batch with a select, so that nothing waits for the device.

Images are float tensors holding uint8 values (0 to 255), N x C x H x W; every operation returns whole
values in that range. Grey images (C = 1) take every operation: Color (saturation) leaves them as they
are, as torchvision's does.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

POLICIES = ("rand", "trivial", "autoaugment-cifar10", "autoaugment-imagenet")
OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert")
OP_ID = {name: i for i, name in enumerate(OPS)}
RAND_OPS, RAND_MAGNITUDE, RAND_BINS = 2, 9, 31  # torchvision's RandAugment defaults
TRIVIAL_BINS = 31
AUTO_BINS = 10


def resolve_policy(name: str, size: int) -> str:
    """`autoaugment`: the CIFAR-10 policy for images of at most 64 px, the ImageNet one otherwise."""
    if name == "autoaugment":
        return "autoaugment-cifar10" if size <= 64 else "autoaugment-imagenet"
    return name


def _space(table: dict, bins: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per operation of OPS: its `bins` magnitudes (a row; 0 where it has none or is not in the table)
    and whether it takes a random sign."""
    mags, signed = torch.zeros(len(OPS), bins), torch.zeros(len(OPS), dtype=torch.bool)
    for name, (magnitudes, sign) in table.items():
        m = magnitudes(bins, h, w)
        if isinstance(m, torch.Tensor) and m.ndim:
            mags[OP_ID[name]] = m.float()
        signed[OP_ID[name]] = sign
    return mags, signed


def _v2():
    """torchvision.transforms.v2, imported when a policy is first drawn: importing torchvision loads its
    models and torch._dynamo, seconds that `import convolab` should not pay."""
    from torchvision.transforms import v2

    return v2


def _ids(table: dict) -> torch.Tensor:
    return torch.tensor([OP_ID[name] for name in table])


def _auto_tables(policy: str, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """AutoAugment's sub-policies as (S x 2) tables: operation, probability, magnitude, signed."""
    v2 = _v2()
    which = v2.AutoAugmentPolicy.CIFAR10 if policy.endswith("cifar10") else v2.AutoAugmentPolicy.IMAGENET
    mags, signed = _space(v2.AutoAugment._AUGMENTATION_SPACE, AUTO_BINS, h, w)
    subs = v2.AutoAugment(which)._policies
    op = torch.tensor([[OP_ID[name] for name, _, _ in sub] for sub in subs])
    prob = torch.tensor([[p for _, p, _ in sub] for sub in subs])
    mag = torch.tensor([[float(mags[OP_ID[name], m]) if m is not None else 0.0 for name, _, m in sub]
                        for sub in subs])
    return op, prob, mag, signed[op]


@functools.lru_cache(maxsize=32)
def _tables(policy: str, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The policy's tables for h x w images, on `device` (copied there once, not on every batch)."""
    if policy == "rand":
        table = _v2().RandAugment._AUGMENTATION_SPACE
        tables = (_ids(table), *_space(table, RAND_BINS, h, w))
    elif policy == "trivial":
        table = _v2().TrivialAugmentWide._AUGMENTATION_SPACE
        tables = (_ids(table), *_space(table, TRIVIAL_BINS, h, w))
    elif policy in ("autoaugment-cifar10", "autoaugment-imagenet"):
        tables = _auto_tables(policy, h, w)
    else:
        raise ValueError(f"unknown auto-augment policy {policy!r}; choose from {', '.join(POLICIES)}")
    return tuple(t.to(device) for t in tables)


def draw(policy: str, n: int, h: int, w: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batch's draws: for each layer of operations, (operation id, signed magnitude) per image, on the
    generator's device (a GPU's draws stay there: nothing waits for the device)."""
    gdev = generator.device
    tables = _tables(policy, h, w, gdev)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev)

    def sign(signed: torch.Tensor) -> torch.Tensor:
        return torch.where(signed & (rand(*signed.shape) <= 0.5), -1.0, 1.0)

    if policy == "rand":
        ids, mags, signed = tables
        ops = ids[(rand(RAND_OPS, n) * len(ids)).long()]
        return [(o, mags[o, RAND_MAGNITUDE] * sign(signed[o])) for o in ops]
    if policy == "trivial":
        ids, mags, signed = tables
        op = ids[(rand(n) * len(ids)).long()]
        level = (rand(n) * TRIVIAL_BINS).long()
        return [(op, mags[op, level] * sign(signed[op]))]
    op, prob, mag, signed = tables  # AutoAugment's (_tables refused any other policy)
    sub = (rand(n) * len(op)).long()
    layers = []
    for k in range(2):
        apply = rand(n) < prob[sub, k]
        layers.append((torch.where(apply, op[sub, k], OP_ID["Identity"]), mag[sub, k] * sign(signed[sub, k])))
    return layers


def auto_augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """`x` (float, uint8 values) with each image's own draw of `policy`; uint8 in, uint8 out too."""
    as_uint8 = x.dtype == torch.uint8
    out = x.float()
    for op, value in draw(policy, x.shape[0], x.shape[-2], x.shape[-1], generator):
        out = apply_ops(out, op.to(x.device), value.to(x.device))
    return out.to(torch.uint8) if as_uint8 else out


def apply_ops(x: torch.Tensor, op: torch.Tensor, value: torch.Tensor, dense: bool | None = None) -> torch.Tensor:
    """Image i through operation OPS[op[i]] with magnitude value[i].

    On the CPU each operation runs on the images that drew it. On a GPU (`dense`) each runs on the whole
    batch and a select keeps each image's own: picking the images out (`nonzero`) would make the host wait
    for the device on every operation of every batch, and the GPU does the spare work in less time."""
    if dense if dense is not None else x.device.type != "cpu":
        return _apply_dense(x, op, value)
    out = x.clone()
    geometric = (op >= OP_ID["ShearX"]) & (op <= OP_ID["Rotate"])
    idx = geometric.nonzero().squeeze(1)
    if idx.numel():
        out[idx] = _affine(x[idx], op[idx], value[idx])
    for name, fn in _COLOUR.items():
        idx = (op == OP_ID[name]).nonzero().squeeze(1)
        if idx.numel():
            out[idx] = fn(x[idx], value[idx].view(-1, 1, 1, 1)).clamp_(0, 255).floor_()
    return out


def _apply_dense(x: torch.Tensor, op: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    def chosen(mask: torch.Tensor) -> torch.Tensor:
        return mask.view(-1, 1, 1, 1)

    geometric = (op >= OP_ID["ShearX"]) & (op <= OP_ID["Rotate"])
    out = torch.where(chosen(geometric), _affine(x, op, value), x)
    m = value.view(-1, 1, 1, 1)
    for name, fn in _COLOUR.items():
        out = torch.where(chosen(op == OP_ID[name]), fn(x, m).clamp_(0, 255).floor_(), out)
    return out


def _affine(x: torch.Tensor, op: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Shears (about the top-left corner, as torchvision's), translations (whole pixels) and rotations
    (about the centre), each image its own, nearest pixels, 0 outside."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    shear_x, shear_y = op == OP_ID["ShearX"], op == OP_ID["ShearY"]
    # x_in = x_out + m * y_out, y measured from the image's top edge (torchvision's centre [0, 0])
    theta[:, 0, 1] = torch.where(shear_x, m * h / w, 0.0)
    theta[:, 1, 0] = torch.where(shear_y, m * w / h, 0.0)
    shift_x = torch.where(shear_x, m * h / w, 0.0)
    shift_y = torch.where(shear_y, m * w / h, 0.0)
    shift_x = torch.where(op == OP_ID["TranslateX"], -2 * m.trunc() / w, shift_x)
    shift_y = torch.where(op == OP_ID["TranslateY"], -2 * m.trunc() / h, shift_y)
    theta[:, 0, 2], theta[:, 1, 2] = shift_x, shift_y
    rotate = op == OP_ID["Rotate"]
    angle = torch.where(rotate, m, 0.0) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[:, 0, 0] = torch.where(rotate, cos, theta[:, 0, 0])
    theta[:, 0, 1] = torch.where(rotate, -sin * h / w, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(rotate, sin * w / h, theta[:, 1, 0])
    theta[:, 1, 1] = torch.where(rotate, cos, theta[:, 1, 1])
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).floor()  # (torchvision's weights)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return factor * x + (1 - factor) * other


def _sharpness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with the image smoothed by torchvision's 3 x 3 kernel (its border pixels kept)."""
    c, h, w = x.shape[1:]
    if h < 3 or w < 3:  # no inner pixels: torchvision's leaves the image as it is
        return x
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c).round()
    return _blend(x, smooth, 1 + m)


def _autocontrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    low, high = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    flat = high == low
    inv_scale = torch.where(flat, 1.0, (high - low) * (1.0 / 255))  # (torchvision's arithmetic: its truncation)
    return torch.where(flat, x, (x - low) / inv_scale)


def _equalize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """PIL's histogram equalization per image and channel, all at once."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w).long().clamp(0, 255)
    hist = torch.zeros(n * c, 256, device=x.device).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float))
    last = hist.gather(1, flat.amax(1, keepdim=True))  # the count of the last non-empty bin
    step = ((h * w - last) / 255).floor()
    lut = ((hist.cumsum(1) + (step / 2).floor()) / step.clamp(min=1)).floor()
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut[:, :-1]], 1).clamp(0, 255)
    out = torch.where(step == 0, flat.float(), lut.gather(1, flat))
    return out.view(n, c, h, w)


_COLOUR = {
    "Brightness": lambda x, m: x * (1 + m),
    "Color": lambda x, m: x if x.shape[1] == 1 else _blend(x, _grey(x), 1 + m),
    "Contrast": lambda x, m: _blend(x, _grey(x).mean((1, 2, 3), keepdim=True), 1 + m),
    "Sharpness": _sharpness,
    "Posterize": lambda x, m: (x / 2 ** (8 - m)).floor() * 2 ** (8 - m),
    "Solarize": lambda x, m: torch.where(x >= 255 * m, 255 - x, x),
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
    "Invert": lambda x, m: 255 - x,
}

__all__ = ["OPS", "POLICIES", "apply_ops", "auto_augment", "draw", "resolve_policy"]
