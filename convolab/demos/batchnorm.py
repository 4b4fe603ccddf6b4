"""Article 002's claim for batch normalization, shown: the same sigmoid LeNet with and without BN,
trained with plain SGD at d2l's high learning rate (0.9). Without BN the sigmoids saturate and
the loss hardly moves for several epochs; with BN it falls from the start.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import load_data
from ..training import TrainConfig, Trainer
from ..training.checkpoint import atomic_write
from ..training.rundir import prepare_run_dir

MODEL = "lenet5_bn"
ARMS = (("without batch norm", False), ("with batch norm", True))


@dataclass(frozen=True)
class BatchNormRecipe:
    """d2l's BN chapter (v0.17): plain SGD, no momentum or weight decay, a constant high rate."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.9
    data: str = "mnist5k"


def arm_config(batch_norm: bool, recipe: BatchNormRecipe, output: Path, progress: bool,
               seed: int) -> TrainConfig:
    """One arm of the comparison; the two differ only in `batch_norm`."""
    return TrainConfig(model=MODEL, data=recipe.data, epochs=recipe.epochs, batch_size=recipe.batch_size,
                       optimizer="sgd", lr=recipe.lr, momentum=0.0, weight_decay=0.0, schedule="constant",
                       warmup_epochs=0.0, augment="none", seed=seed, progress=progress,
                       model_options={"batch_norm": batch_norm},
                       output=str(output / ("lenet5_bn" if batch_norm else "lenet5_no_bn")))


def plot_comparison(histories: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Train loss and test accuracy by epoch, both arms on each panel, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for label, history in histories.items():
        epochs = [row["epoch"] for row in history]
        ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o", label=label)
        ax_acc.plot(epochs, [row["test_acc"] for row in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def batchnorm_demo(epochs: int | None = None, output: str | None = None, progress: bool = True,
                   seed: int = 0) -> Iterator[str]:
    """Train both arms, write the curves to OUTPUT/batchnorm.png, print the final figures of each."""
    recipe = BatchNormRecipe() if epochs is None else BatchNormRecipe(epochs=epochs)
    out = prepare_run_dir(output or "demo-batchnorm")
    data = load_data(recipe.data)
    yield f"LeNet-5 (d2l layout, sigmoid) with and without batch norm on {recipe.data}: plain SGD lr " \
          f"{recipe.lr:g}, batch {recipe.batch_size}, {recipe.epochs} epochs, the same seed"
    results = {}
    for label, batch_norm in ARMS:
        yield f"training {label} ..."
        results[label] = Trainer(arm_config(batch_norm, recipe, out, progress, seed), data=data).fit()
    png = out / "batchnorm.png"
    plot_comparison({label: r.history for label, r in results.items()}, png,
                    f"LeNet-5 on {recipe.data}, SGD lr {recipe.lr:g}: batch norm against none")
    width = max(len(label) for label in results)
    yield f"{'':<{width}}  final train loss  test accuracy"
    for label, r in results.items():
        yield f"{label:<{width}}  {r.history[-1]['train_loss']:>16.4f}  {r.test_acc:>13.4f}"
    yield f"loss curves: {png}"
    yield f"test accuracy: {results['with batch norm'].test_acc:.4f}"
