"""Loading the weights of a checkpoint into another model: what matches by name and shape, and a
report naming everything else (never dropped silently)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


@dataclass
class LoadReport:
    """Which entries of a state dict were loaded into a model, and which were skipped and why."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)   # in the checkpoint, not in the model
    # (name, shape in the checkpoint, shape in the model)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """Every name not loaded: missing, unexpected and shape-mismatched."""
        return sorted(self.missing + self.unexpected + [name for name, _, _ in self.mismatched])

    def summary(self) -> str:
        """One line: how many tensors were loaded, and each skipped name with its reason."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        parts = [f"loaded {len(self.loaded)} of the model's {total} tensors"]
        if self.mismatched:
            shapes = ", ".join(f"{n} ({_dims(c)} in checkpoint, {_dims(m)} in model)"
                               for n, c, m in self.mismatched)
            parts.append(f"shape-mismatched: {shapes}")
        if self.missing:
            parts.append(f"missing (left as initialized): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected (not used): {', '.join(self.unexpected)}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {"loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": [[n, list(c), list(m)] for n, c, m in self.mismatched]}


def load_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy into `model` every entry of `state_dict` whose name and shape match; report the rest."""
    own = model.state_dict()
    report, loadable = LoadReport(), {}
    for name, value in state_dict.items():
        if name not in own:
            report.unexpected.append(name)
        elif not isinstance(value, torch.Tensor) or value.shape != own[name].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else ()
            report.mismatched.append((name, shape, tuple(own[name].shape)))
        else:
            loadable[name] = value
            report.loaded.append(name)
    report.missing = [name for name in own if name not in state_dict]
    result = model.load_state_dict(loadable, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # filtered above
    return report


__all__ = ["LoadReport", "load_matching"]
