"""What a run folder holds that was made from its best.pt (its exports and evaluate's files, at the names the
commands give them), and the word a resumed run says when its new best.pt leaves them describing an earlier one."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("convolab")

# `convolab export RUN` (each format's default name, and ONNX of the safetensors folder), `convolab evaluate RUN`
# (its folder) and `convolab evaluate` of each of those exports (MODEL-evaluation beside it)
EXPORTS = ("best.onnx", "best.torchscript.pt", "best.pt2", "best-safetensors.onnx")
MADE_FROM_BEST = (*EXPORTS, "best-safetensors", "evaluation", *(f"{name}-evaluation" for name in EXPORTS))


def made_before_best(run_dir: str | Path) -> list[str]:
    """The names of MADE_FROM_BEST in `run_dir` older than its best.pt (made from an earlier one)."""
    run_dir = Path(run_dir)
    try:
        best = (run_dir / "best.pt").stat().st_mtime
        return [name for name in MADE_FROM_BEST
                if (run_dir / name).exists() and (run_dir / name).stat().st_mtime < best]
    except OSError:
        return []


def say_made_before_best(run_dir: str | Path) -> None:
    """A warning naming what `made_before_best` finds (otherwise a resumed run's new best.pt leaves best.onnx and
    evaluation/ scoring the earlier one without a word)."""
    stale = made_before_best(run_dir)
    if stale:
        log.warning("%s in %s %s made from an earlier best.pt than the run now has: export and evaluate the run "
                    "again", ", ".join(stale), run_dir, "was" if len(stale) == 1 else "were")


__all__ = ["MADE_FROM_BEST", "made_before_best", "say_made_before_best"]
