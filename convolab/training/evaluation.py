"""Scoring a model on a test split: loss and top-1 accuracy, of each output that has a target (the mean
absolute error of an output of numbers)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import BatchTransform
from ..errors import DataError
from .batches import Batch, split_batches, to_device
from .build import Run
from .device import autocast
from .targets import output_target


def scored_outputs(model: nn.Module, x: torch.Tensor, every_output: bool, tta: str, device: torch.device,
                   amp_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """What a run scores for a normalized batch `x`: {"main": logits}, or with `every_output` each output of
    `model.forward_outputs`; in the run's precision (`amp_dtype` under autocast, None: full); with `tta="flip"`
    each the mean of the image's and its mirror image's (in float32). `evaluate` and `predict` score alike."""
    with autocast(device, amp_dtype):
        named = model.forward_outputs(x) if every_output else {"main": model(x)}
        if tta == "flip":
            mirrored = model.forward_outputs(x.flip(3)) if every_output else {"main": model(x.flip(3))}
            named = {k: (v.float() + mirrored[k].float()) / 2 for k, v in named.items()}
    return named


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor | None, labels: torch.Tensor, transform: BatchTransform,
             batch_size: int, device: torch.device, amp_dtype: torch.dtype | None = None,
             return_logits: bool = False, targets: dict[str, torch.Tensor] | None = None,
             batches: Iterable[Batch] | None = None, tta: str = "none",
             scales: dict[str, float] | None = None) -> dict[str, Any]:
    """Loss and top-1 accuracy of `model` (eval mode) on uint8 images, and the images scored; logits too if asked.

    `targets` ({output name: labels}) also scores those outputs of `model.forward_outputs`: `acc_<name>`,
    or `mae_<name>` for a target of numbers (in its units: times `scales[name]`, its standard deviation).
    `batches` ((uint8 images, labels, indices into `labels`), e.g. streamed from files) replaces `images`.
    `tta="flip"`: each output is the mean of the logits of the image and of its mirror image.
    """
    model.eval()
    targets = targets or {}
    # Sums stay on the device: one synchronization at the end, not two per batch.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    correct_by = {name: torch.zeros((), dtype=torch.float64, device=device) for name in targets}
    count, outputs = 0, []
    for images_u8, y, index in batches if batches is not None else split_batches(images, labels, batch_size):
        x = transform(to_device(images_u8, device))
        y = y.to(device, non_blocking=True)
        named = scored_outputs(model, x, bool(targets), tta, device, amp_dtype)
        logits = named["main"].float()
        total_loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
        for name, target in targets.items():
            t = target[index.to(target.device)].to(device, non_blocking=True)
            if t.is_floating_point():  # numbers: the summed absolute error
                correct_by[name] += (named[name].float().squeeze(1) - t).abs().sum() * (scales or {}).get(name, 1.0)
            else:
                correct_by[name] += (named[name].argmax(1) == t).sum()
        if return_logits:
            outputs.append(logits.cpu())
    n = max(1, count)
    result: dict[str, Any] = {"loss": total_loss.item() / n, "acc": correct.item() / n, "images": count}
    result.update({f"{'mae' if targets[name].is_floating_point() else 'acc'}_{name}": c.item() / n
                   for name, c in correct_by.items()})
    if return_logits:
        result["logits"] = torch.cat(outputs) if outputs else torch.empty(0)
    return result


def evaluate_run(run: Run, model: nn.Module) -> dict[str, Any]:
    """Test loss and accuracy (of each scored output too); with several processes each evaluates its
    share of the test set and the sums are all-reduced."""
    size, shard = max(256, run.config.batch_size), run.dist.enabled
    labels = run.batches.test_labels
    heads = getattr(run.model, "task_classes", {})  # (each scored against its own target, never the labels)
    targets = {name: output_target(name, labels, run.test_targets, heads) for name in run.scored_outputs}
    columns = getattr(run.data, "columns", {})  # a labels CSV's: numbers scored in their units
    scales = {name: c.std for name, c in columns.items() if c.kind == "number"}
    if shard:
        run.dist.sync_buffers(model)  # rank 0's BN statistics, the ones its checkpoint holds
        labels, targets = run.dist.shard(labels), {name: run.dist.shard(t) for name, t in targets.items()}
    result = evaluate(model, None, labels, run.eval_transform, size, run.device, run.amp_dtype, targets=targets,
                      batches=run.batches.test_batches(size, shard), tta=run.config.tta, scales=scales)
    if not shard:
        if not result["images"]:
            raise no_image_read(run, "test")
        return result
    n = result["images"]  # those scored: a streamed shard's unreadable images, skipped, count in no process
    keys = ["acc"] + [k for k in result if k.startswith(("acc_", "mae_"))]
    loss, n_all, *corrects = run.dist.sum(result["loss"] * n, n, *(result[k] * n for k in keys))
    if not n_all:
        raise no_image_read(run, "test")
    accs = {k: (c if k.startswith("mae_") else round(c)) / n_all for k, c in zip(keys, corrects, strict=True)}
    return {"loss": loss / n_all} | accs


def no_image_read(run: Run, split: str) -> DataError:
    """The line for a pass over streamed `split` images none of which could be read (every one skipped): no
    figure is made of no image."""
    skipped = round(run.dist.sum(len(getattr(run.data, "skipped", ())))[0])  # (every process reaches this line)
    return DataError(f"no {split} image of `data` {run.config.data} could be read ({skipped} unreadable files "
                     "skipped by `skip_bad_images`, the first of them named above): repair or remove them")


__all__ = ["evaluate", "evaluate_run", "no_image_read", "scored_outputs", "split_batches"]
