"""What `train` and `finetune` print as a run ends: best.pt's epoch and figure (chosen on the images each epoch is
scored on, and saying so), a labels CSV's other targets, and last the line a script reads, the test accuracy: of
best.pt on the test split a run that validated on held-out images kept unseen, else the last epoch's."""
from __future__ import annotations

from typing import Any

from ..training.final_test import unseen_test_line
from ..training.loop import TrainResult, chosen_on, scored_split


def closing_lines(trainer: Any, result: TrainResult) -> list[str]:
    """The lines that end a run of `trainer` that `fit` returned `result` of (rank 0 prints them)."""
    monitor, scored, chosen = trainer.config.monitor, scored_split(trainer.data), chosen_on(trainer.data)
    lines = []
    if monitor == "test_acc":
        lines.append(f"best {scored} accuracy {result.best_acc:.4f} at epoch {result.best_epoch} ({chosen}); "
                     f"run folder {result.run_dir}")
    elif result.best_epoch:  # (the history holds every epoch, a resumed run's too)
        lines.append(f"best {monitor} {result.history[result.best_epoch - 1][monitor]:.4g} at epoch "
                     f"{result.best_epoch} ({scored} accuracy {result.best_acc:.4f}; {chosen}); run folder "
                     f"{result.run_dir}")
    others = {k[5:]: v for k, v in (result.history[-1] if result.history else {}).items()
              if k.startswith(("test_acc_", "test_mae_"))}
    if others and hasattr(trainer.data, "describe"):  # a labels CSV's other targets, at the last epoch
        lines.append(f"other targets{' (validation images)' if scored == 'validation' else ''}: " + ", ".join(
            f"{k[4:]} accuracy {v:.4f}" if k.startswith("acc") else f"{k[4:]} MAE {v:.4g}" for k, v in others.items()))
    if scored == "test":
        lines.append(f"test accuracy: {result.test_acc:.4f}")
        return lines
    lines.append(f"validation accuracy: {result.test_acc:.4f} (the last epoch's)")
    lines.append(unseen_test_line(result.unseen_test, result.run_dir) if result.unseen_test is not None else
                 f"the test split kept unseen was not scored: {result.run_dir} holds no best.pt")
    return lines


__all__ = ["closing_lines"]
