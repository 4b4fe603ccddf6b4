"""The articles' and papers' experiments as recipes: what is claimed, where, which runs test it, and how
the measured numbers decide whether the claim held.

An experiment is a few *arms* (one `compare` each: models under shared options) trained over one or more
seeds; its verdict reads the runs' figures (`Outcome`: per run label, the per-seed histories) and
returns the last line of the report. Each has a full form (the paper's own schedule, for a GPU) and a
quick form that a 2-core CPU runs in 5 to 17 minutes (a subset of the data, fewer epochs; the report
says so).
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..compare.seeds import no_spread, welch_test
from ..data import DATA_SETS
from ..training.recipes import RECIPES

History = list[dict[str, float]]


@dataclass(frozen=True)
class Arm:
    """Models trained with the experiment's options plus `options` (plus `full` in the full form, the paper's own
    recipe); each run is labelled `label` + model."""

    models: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    full: dict[str, Any] = field(default_factory=dict)

    def run_label(self, model: str) -> str:
        return f"{model}{self.label}"


@dataclass
class Outcome:
    """The measured histories of an experiment: run label -> one history (list of epoch rows) per seed."""

    runs: dict[str, list[History]]

    def final(self, label: str, key: str) -> list[float]:
        """`key` (e.g. "test_acc") of the last epoch of each seed's run of `label`; runs with no epoch left out."""
        return [h[-1][key] for h in self.runs[label] if h]

    def mean(self, label: str, key: str) -> float:
        """The mean of `final` over the seeds; nan where no run of `label` has an epoch."""
        values = self.final(label, key)
        return statistics.fmean(values) if values else float("nan")

    def train_error(self, label: str) -> float:
        """1 - the final training accuracy of `label`, mean over the seeds (nan: no epoch)."""
        return 1 - self.mean(label, "train_acc")

    def test_error(self, label: str) -> float:
        """1 - the final test accuracy of `label`, mean over the seeds (nan: no epoch)."""
        return 1 - self.mean(label, "test_acc")


Verdict = Callable[[Outcome], tuple[bool, str]]


@dataclass(frozen=True)
class Experiment:
    """One experiment: the claim and where it is made, its arms and data, the full and quick schedules and seeds,
    the paper's figures, and the verdict that reads the Outcome."""

    name: str
    claim: str
    source: str
    arms: tuple[Arm, ...]
    data: str  # the data set it needs (a name, or a CIFAR-10 folder/tar given with --data)
    full: dict[str, Any]  # TrainConfig values of the paper's schedule
    quick: dict[str, Any]  # ... of the quick form
    paper: dict[str, str]  # the paper's figure for each run label (or for the claim), as printed there
    verdict: Verdict
    full_seeds: int = 1
    quick_seeds: int = 1
    quick_note: str = ""
    full_note: str = "the paper's schedule"  # what the full form trains by, where that is not the source's own
    # The data set the claim and its figures are of, as the source names it ("Fashion-MNIST"); "" where the claim
    # is stated of any data (batchnorm's: its verdict is judged on whatever data it runs on)
    claim_data: str = ""

    def labels(self) -> list[str]:
        """Every run label, arm by arm: each model with its arm's label appended."""
        return [arm.run_label(m) for arm in self.arms for m in arm.models]

    def off_claim(self, data: str) -> str:
        """Why the claim cannot be judged on `data` ("on mnist5k, not the claim's Fashion-MNIST"); "" where it can.
        A named data set other than `self.data` is other data; a folder or tar is taken as the one the experiment
        names (a CIFAR-10 experiment's is given so)."""
        if not self.claim_data or data == self.data or data not in DATA_SETS:
            return ""
        return f"on {data}, not the claim's {self.claim_data}"

    def not_judged(self, out: Outcome, data: str) -> str:
        """The verdict line on data the claim is not about: the figures, and no judgement against the source's."""
        figures = ", ".join(f"{k} {out.train_error(k):.4f} / {out.mean(k, 'test_acc'):.4f}" for k in self.labels())
        return (f"{self.name}: {self.off_claim(data)}: final train error / test accuracy {figures}; the source's "
                f"figures are {self.claim_data}'s and do not apply: not judged")


def _held(ok: bool) -> str:
    return "reproduced" if ok else "not reproduced"


def degradation_verdict(out: Outcome) -> tuple[bool, str]:
    """Both halves of the claim: the deeper plain net trains worse (Fig. 6 left), and with shortcuts the deeper
    net trains at least as well as the shallower one and better than the deep plain net (Fig. 6 right)."""
    # judged as printed, so that the line never reads "0.636 > 0.636"
    p20, p56, r20, r56 = (round(out.train_error(k), 3) for k in ("plain20", "plain56", "resnet20", "resnet56"))
    degraded, fixed = p56 > p20, r56 <= r20 and r56 < p56
    return degraded and fixed, (
        f"degradation: plain56 final train error {p56:.3f} {'>' if degraded else '<='} plain20 {p20:.3f}; "
        f"resnet56 {r56:.3f} {'<=' if r56 <= r20 else '>'} resnet20 {r20:.3f} and {'<' if r56 < p56 else '>='} "
        f"plain56: {_held(degraded and fixed)}")


# The least final test accuracy of the shallowest ResNet that counts as having learnt: three times chance on
# CIFAR-10's ten classes (the quick form's resnet20 reaches 0.41, the full form's about 0.91).
CIFAR_LEARNT = 0.3


def resnet_cifar_verdict(out: Outcome) -> tuple[bool, str]:
    """Test error never rises with depth and falls somewhere, the shallowest net having learnt: depths that all
    tie (at chance, say) show nothing about depth."""
    labels = list(out.runs)
    errors = [round(out.test_error(k) * 100, 2) for k in labels]  # in percent, judged as printed
    monotone = all(a >= b for a, b in zip(errors, errors[1:]))
    falls = any(a > b for a, b in zip(errors, errors[1:]))
    learnt = bool(errors) and 100 - errors[0] >= CIFAR_LEARNT * 100
    ok = monotone and falls and learnt
    pairs = ", ".join(f"{k} {e:.2f}%" for k, e in zip(labels, errors))
    rises = [a < b for a, b in zip(errors, errors[1:])]
    worse = ("deeper is worse at every step" if all(rises) else "deeper is never better, and worse at least once"
             if not falls else "deeper is not always better")  # (the last: better at one step, worse at another)
    why = ([worse] if not monotone else [] if falls else ["no deeper net is better"]) + \
        ([] if learnt else [f"{labels[0]} stayed under {CIFAR_LEARNT:.0%} test accuracy (it did not learn)"])
    said = "; ".join(why) or "deeper is never worse, and better at least once"
    return ok, f"resnet-cifar: test error {pairs}; {said}: {_held(ok)}"


def lecture_mnist_verdict(out: Outcome) -> tuple[bool, str]:
    # The final epoch's, as every verdict: the best over epochs is chosen on the test images it is scored on
    acc = round(out.mean("resnet_mnist", "test_acc"), 4)  # (judged as printed)
    ok = acc >= 0.99
    return ok, f"lecture-mnist: resnet_mnist final test accuracy {acc:.4f} {'>=' if ok else '<'} 0.99: {_held(ok)}"


def lenet_fashion_verdict(out: Outcome) -> tuple[bool, str]:
    train, test = out.mean("lenet5", "train_acc"), out.mean("lenet5", "test_acc")
    # d2l's 51 CI builds: train accuracy 0.815-0.831, test 0.762-0.823 (docs/REFERENCE.md section 3, whose
    # takeaway: train accuracy within about 0.01 of that range, test accuracy at least 0.75)
    train, test = round(train, 3), round(test, 3)  # (judged as printed)
    failed = (["train outside 0.805-0.841"] if not 0.805 <= train <= 0.841 else []) + \
        (["test below 0.75"] if test < 0.75 else [])
    above = "; above it" if test > 0.823 else ""
    return not failed, (f"lenet-fashion: lenet5 final train accuracy {train:.3f} (book 0.815-0.831, within 0.01), "
                        f"test {test:.3f} (book 0.762-0.823{above}; at least 0.75): {_held(not failed)}"
                        + (f" ({', '.join(failed)})" if failed else ""))


BN_LEARNT = 0.5  # the least final test accuracy of lenet5_bn that counts as having learnt


def batchnorm_verdict(out: Outcome) -> tuple[bool, str]:
    plain, bn = (round(out.mean(k, "test_acc"), 4) for k in ("lenet5_bn-without-bn", "lenet5_bn"))  # as printed
    # The claim is that BN trains where the plain net does not: BN must learn (half right, 5x chance with 10
    # classes), not merely sit a little higher at chance.
    learnt = bn >= BN_LEARNT
    ok = bn > plain and learnt
    # Under 0.5, what the figures show: a training error that fell too (it fit its training images; on the 8x8
    # digits, 15 steps leave BN's running statistics, which scoring uses, far from its batches': scored with batch
    # statistics its test accuracy is 0.83), or one that did not (it did not learn)
    train_error = round(out.train_error("lenet5_bn"), 4)  # (as the table prints it)
    fit = train_error <= 1 - BN_LEARNT
    unlearnt = "" if learnt else (
        f", but lenet5_bn itself stayed under {BN_LEARNT} on its test images, though it fit its training images "
        f"(training error {train_error:.4f})" if fit else
        f", but lenet5_bn itself stayed under {BN_LEARNT} on its test images, and its training error is "
        f"{train_error:.4f} (it did not learn)")
    return ok, (f"batchnorm: at the high learning rate lenet5_bn final test accuracy {bn:.4f} "
                f"{'>' if bn > plain else '<='} {plain:.4f} without its BN layers{unlearnt}: {_held(ok)}")


def label_smoothing_verdict(out: Outcome) -> tuple[bool, str]:
    plain, smooth = out.final("resnet20", "test_acc"), out.final("resnet20+ls0.1", "test_acc")
    test = welch_test(smooth, plain)
    error, error_plain = round(1 - statistics.fmean(smooth), 4), round(1 - statistics.fmean(plain), 4)  # as printed
    lower = error < error_plain
    ok = lower and test is not None and test.different
    if test is None:
        why = "one seed: no test" if min(len(smooth), len(plain)) < 2 else \
            "neither varies over its seeds: no test" if no_spread(smooth, plain) else "scipy is not installed: no test"
    else:
        p = f"p={test.p:.3f}" if test.p >= 0.001 else "p<0.001"
        why = f"Welch {p}, {'beyond' if test.different else 'within'} the seeds' noise at 5%"
    return ok, (f"label-smoothing: resnet20 final test error {error:.4f} with smoothing 0.1 "
                f"{'<' if lower else '>='} {error_plain:.4f} without ({len(smooth)} and "
                f"{len(plain)} seeds; {why}): {_held(ok)}")


# He et al. 2015, section 4.2: batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, 64k in all
# (182 epochs of 45k images; here the 50k of the whole training set), weight decay 1e-4, momentum 0.9,
# crop + flip.
HE_CIFAR = dict(RECIPES["he-cifar"].values)  # (`convolab train --recipe he-cifar`)
HE_110_WARMUP = {"warmup_epochs": 1, "warmup_mode": "constant"}  # (390 iterations: 50k images // batch 128)
QUICK_CIFAR = {"batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
               "decay_norm_and_bias": True, "schedule": "onecycle", "warmup_epochs": 1, "epochs": 5,
               "augment": "crop-flip", "train_subset": 5000, "test_subset": 2000}
# d2l 6.6 (train_ch6): plain SGD at a constant 0.9, batch 256, 10 epochs, Xavier init (the model's own), and the
# pixels as ToTensor leaves them, in [0, 1]
D2L_LENET = {"optimizer": "sgd", "lr": 0.9, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 256, "epochs": 10,
             "schedule": "constant", "warmup_epochs": 0, "augment": "none", "normalize": "none"}

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "degradation",
        "a 56-layer plain network has higher training error than a 20-layer one; residual connections fix it",
        "article 000; He et al. 2015, Fig. 1 and Fig. 6 (left: plain, right: ResNet)",
        (Arm(("plain20", "plain56", "resnet20", "resnet56")),),
        "cifar10", HE_CIFAR, QUICK_CIFAR,
        {"plain20": "Fig. 6: lower training error than plain56 throughout",
         "plain56": "Fig. 6: the highest training error of the plain nets",
         "resnet20": "8.75% test error (Table 6)", "resnet56": "6.97% test error (Table 6)"},
        degradation_verdict,
        quick_note="at most 5,000 training and 2,000 test images, 5 epochs of one-cycle",
        claim_data="CIFAR-10",
    ),
    Experiment(
        "resnet-cifar",
        "deeper CIFAR ResNets have lower test error (Table 6)",
        "He et al. 2015, Table 6",
        # ResNet-110 warms up at 0.01 "until the training error is below 80% (about 400 iterations)" (section 4.2)
        (Arm(("resnet20", "resnet32", "resnet44", "resnet56")), Arm(("resnet110",), full=HE_110_WARMUP)),
        "cifar10", HE_CIFAR, QUICK_CIFAR | {"epochs": 4},
        {"resnet20": "8.75%", "resnet32": "7.51%", "resnet44": "7.17%", "resnet56": "6.97%",
         "resnet110": "6.43% (best of 5; mean 6.61 +- 0.16)"},
        resnet_cifar_verdict,
        quick_note="at most 5,000 training and 2,000 test images, 4 epochs of one-cycle",
        claim_data="CIFAR-10",
    ),
    Experiment(
        "lecture-mnist",
        "the lecture's residual network reaches 99% test accuracy on MNIST",
        "article 000 (the lecture's residual and Inception nets)",
        (Arm(("resnet_mnist", "inception_mnist")),),
        "mnist", {"epochs": 10, "batch_size": 64, "label_smoothing": 0.1},
        {"epochs": 5, "batch_size": 64, "label_smoothing": 0.1},
        {"resnet_mnist": ">= 99% test accuracy", "inception_mnist": "(no figure)"},
        lecture_mnist_verdict,
        quick_note="all the training images, 5 epochs (the recipe of `convolab demo resnet-mnist`)",
        # (the lecture's own SGD, lr 0.01 and momentum 0.5 in its course code, is not in the article's text)
        full_note="all of MNIST, 10 epochs of the recipe of `convolab demo resnet-mnist` (AdamW, one-cycle, label "
                  "smoothing 0.1), not the lecture's SGD",
        claim_data="MNIST",
    ),
    Experiment(
        "lenet-fashion",
        "d2l's LeNet-5 (sigmoid, SGD lr 0.9, batch 256, 10 epochs) on Fashion-MNIST",
        "article 003 (d2l 6.6); book output train 0.831 / test 0.789 (docs/REFERENCE.md section 3)",
        (Arm(("lenet5",)), Arm(("lenet5_bn",), {"lr": 1.0}),
         # the modern net with a modern recipe: momentum, and inputs standardized (at lr 0.1 on raw [0, 1]
         # pixels it stays at chance)
         Arm(("lenet5_modern",), {"lr": 0.1, "momentum": 0.9, "normalize": "data"})),
        "fashion-mnist", D2L_LENET, D2L_LENET,  # the book's recipe is CPU-sized: the quick form is the full one
        {"lenet5": "train 0.831, test 0.789 (CI builds: test 0.762-0.823)",
         "lenet5_bn": "train 0.897, test 0.836 (lr 1.0)", "lenet5_modern": "(not in the book)"},
        lenet_fashion_verdict,
        quick_note="the book's recipe in full: all the training images, 10 epochs",
        claim_data="Fashion-MNIST",
    ),
    Experiment(
        "batchnorm",
        "batch normalization allows high learning rates",
        "article 002 (Ioffe and Szegedy 2015)",
        # the control is the same network with its BN layers taken out (d2l's BN-LeNet, 44,426 parameters)
        (Arm(("lenet5_bn",)), Arm(("lenet5_bn",), {"model_options": {"batch_norm": False}}, "-without-bn")),
        "mnist", D2L_LENET | {"lr": 1.0},  # the BN-LeNet recipe of d2l v0.17 (7.5): lr 1.0, batch 256
        D2L_LENET | {"lr": 1.0, "epochs": 3, "train_subset": 20000},
        {"lenet5_bn": "trains at lr 1.0", "lenet5_bn-without-bn": "(no figure: trains slowly or not at all at lr 1.0)"},
        batchnorm_verdict,
        quick_note="at most 20,000 training images, 3 epochs",
    ),
    Experiment(
        "label-smoothing",
        "label smoothing lowers the error a little",
        "article 002 (Szegedy et al. 2016: top-1 and top-5 error each about 0.2% lower on ImageNet)",
        (Arm(("resnet20",)), Arm(("resnet20",), {"label_smoothing": 0.1}, "+ls0.1")),
        "cifar10", HE_CIFAR, QUICK_CIFAR | {"epochs": 3, "train_subset": 3000, "test_subset": 2000},
        {"resnet20": "8.75% test error (Table 6)", "resnet20+ls0.1": "about 0.2 points lower (ImageNet)"},
        label_smoothing_verdict, full_seeds=5, quick_seeds=2,
        quick_note="at most 3,000 training and 2,000 test images, 3 epochs",  # (the seeds: in the Run: line)
        full_note="He et al.'s CIFAR schedule; the claim's figure is of ImageNet",
    ),
)}
