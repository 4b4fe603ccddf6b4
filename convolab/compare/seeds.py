"""Several seeds per model: the runs grouped by model, each figure's mean and spread over the seeds, and
whether two models differ by more than seed-to-seed noise (Welch's t-test)."""
from __future__ import annotations

import logging
import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..training.config import option_problem
from .results import ModelResult

log = logging.getLogger("convolab")

# The accuracy and loss figures summarized over seeds: key in results.json -> column of the table.
FIGURES = {"best_acc": "best test acc", "final_acc": "final test acc", "final_train_loss": "final train loss",
           "final_train_acc": "final train acc", "final_test_loss": "final test loss"}
# Of runs that validated on images --val-fraction held out (their test split kept unseen): the per-epoch figures are
# the validation images', and best.pt's accuracy on the unseen test split is one more
VALIDATED = {"best_acc": "best val acc", "final_acc": "final val acc", "final_train_loss": "final train loss",
             "final_train_acc": "final train acc", "final_test_loss": "final val loss",
             "unseen_test_acc": "test acc (best.pt)"}
TIMES = ("wall_seconds", "images_per_second")
ALPHA = 0.05  # the significance level of the verdicts
SPREAD = "mean ± sample standard deviation (n-1) over the seeds that finished"
# The most seeds a comparison or experiment takes: each is a whole run of every model, so more is a typo, not a
# plan (and a count of billions would first build its list of seeds: a MemoryError).
MAX_SEEDS = 1000


def seed_values(seeds: int | Sequence[int], first: int) -> list[int]:
    """`seeds` as a number N (the seeds first .. first+N-1) or as the seed values themselves."""
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"seeds must be >= 1 (a number of seeds) or a list of seed values, got {seeds}")
    count = seeds if isinstance(seeds, int) else len(seeds)
    if count > MAX_SEEDS:  # (before any list is made, or searched for repeats, which takes the square of the count)
        raise ConfigError(f"seeds {count if isinstance(seeds, int) else f'lists {count} values'}: at most {MAX_SEEDS} "
                          "seeds are taken (each seed trains every model once); give fewer seeds")
    if isinstance(seeds, int):
        values = list(range(first, first + seeds))
        problem = option_problem("seed", values[-1])  # (`first` is a checked --seed)
        if problem is not None:
            raise ConfigError(f"seeds {seeds} from seed {first} run up to seed {values[-1]}, but a seed {problem}; "
                              "give fewer seeds or a lower `seed`")
        return values
    values = [int(s) for s in seeds]
    if not values:
        raise ConfigError("seeds is an empty list; give at least one seed value")
    for value in values:
        problem = option_problem("seed", value)
        if problem is not None:
            raise ConfigError(f"each seed in seeds {problem}")
    repeated = sorted({s for s in values if values.count(s) > 1})
    if repeated:
        raise ConfigError(f"seed {', '.join(map(str, repeated))} given twice in seeds; each seed runs once per model")
    return values


class Spread(NamedTuple):
    """A figure over seeds: its mean and sample standard deviation (None with fewer than two values)."""

    mean: float | None
    std: float | None
    n: int

    def format(self, spec: str, sign: str = "±") -> str:
        if self.mean is None:
            return "-"
        if self.std is None:
            return format(self.mean, spec)
        return f"{self.mean:{spec}} {sign} {self.std:{spec}}"


def spread(values: Sequence[float]) -> Spread:
    values = [float(v) for v in values]
    if not values:
        return Spread(None, None, 0)
    std = statistics.stdev(values) if len(values) > 1 else None  # n-1: the seeds are a sample
    return Spread(statistics.fmean(values), std, len(values))


class WelchTest(NamedTuple):
    t: float
    p: float
    different: bool  # p < alpha


def welch_test(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> WelchTest | None:
    """Welch's two-sided t-test of two samples (unequal variances); None when either has fewer than two
    values, when neither varies over its seeds yet they differ (`no_spread`), or when scipy is missing."""
    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:  # (scipy: nan for 0/0, -inf and p=0 else)
        return WelchTest(0.0, 1.0, False) if statistics.fmean(a) == statistics.fmean(b) else None  # (`no_spread`)
    try:  # scipy.stats takes most of a second to import: only when a test is asked for
        from scipy import stats
    except ImportError:
        return None
    with warnings.catch_warnings():  # nearly equal values: scipy warns of precision loss, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    t, p = float(result.statistic), float(result.pvalue)
    return WelchTest(t, p, p < alpha)


def no_spread(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two samples of two or more values differ while neither varies (0.90 twice against 0.95 twice: a
    small test set's tie). Welch's t is then a difference over no noise at all: scipy says t=-inf, p=0 ("different"),
    or float noise makes a t of 10^17; no test can weigh it."""
    return len(a) > 1 and len(b) > 1 and statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0 \
        and statistics.fmean(a) != statistics.fmean(b)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together, in their order: the k-th smallest times the number of
    tests not yet passed, never below the one before it, at most 1. Each pair of a comparison of several models is
    judged on its adjusted p, so that the chance of any false "different" stays at the level (5%) however many
    pairs there are; unadjusted, 10 pairs of 5 models would give one about 40% of the time."""
    pvalues = [p if math.isfinite(p) else 1.0 for p in pvalues]  # (a NaN, which no test should give, sorted wrong)
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [1.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _p_text(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def verdict_line(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float],
                 figure: str = FIGURES["final_acc"], alpha: float = ALPHA) -> str:
    """`A vs B: final test acc 0.8512 +- 0.0031 vs 0.8420 +- 0.0042, Welch t=3.12, p=0.035: different at 5%`."""
    return _line(name_a, a, name_b, b, figure, welch_test(a, b, alpha), alpha)


def _line(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float], figure: str, test: WelchTest | None,
          alpha: float, adjusted: tuple[float, int] | None = None) -> str:
    """The pair's verdict line; `adjusted`: its Holm-adjusted p and the number of pairs tested, which the verdict
    then follows."""
    head = f"{name_a} vs {name_b}: {figure} {spread(a).format('.4f', '+-')} vs {spread(b).format('.4f', '+-')}"
    if not a or not b:
        return f"{head}: no finished run: no test"
    if len(a) < 2 or len(b) < 2:
        return f"{head}: one seed: no test"
    if no_spread(a, b):
        return f"{head}: neither varies over its seeds: no test"
    if test is None:
        return f"{head}: scipy is not installed: no test"
    verdict = "different" if test.different else "not different"
    t = f"{test.t:.2f}" if math.isfinite(test.t) else f"{test.t}"
    holm_p = f", Holm-adjusted over {adjusted[1]} pairs p={_p_text(adjusted[0])}" if adjusted else ""
    return f"{head}, Welch t={t}, p={_p_text(test.p)}{holm_p}: {verdict} at {alpha:.0%}"


def run_figures(r: ModelResult) -> dict[str, float | None]:
    """The figures of one run that the seeds summary averages."""
    last = r.history[-1] if r.history else {}
    return {"best_acc": r.best_acc, "final_acc": r.final_acc, "final_train_loss": last.get("train_loss"),
            "final_train_acc": last.get("train_acc"), "final_test_loss": last.get("test_loss"),
            "unseen_test_acc": r.unseen_test_acc, "wall_seconds": r.wall_seconds,
            "images_per_second": r.images_per_second}


def _held(r: ModelResult) -> bool:
    """Whether a run validated on held-out images (its test split kept unseen: scored, or to be at its end)."""
    return r.validated or r.unseen_test_acc is not None


def validated(results: Sequence[ModelResult]) -> bool:
    """Whether some run of a comparison validated on held-out images and scored its unseen test split at the end."""
    return any(map(_held, results))


def scored_word(results: Sequence[ModelResult]) -> str:
    """What the per-epoch figures of `results` score, for the tables' headers: "val" where every run validated on
    held-out images, "test" where none did, and nothing where they differ (a `report` of runs made apart; its note
    says they are not comparable)."""
    held = [_held(r) for r in results if r.history or _held(r)]  # (runs not begun score nothing: they say nothing)
    return "val" if all(held) else "test" if not any(held) else ""


def figures_of(results: Sequence[ModelResult]) -> dict[str, str]:
    """The figures summarized over seeds, and their columns' names: VALIDATED's where some run validated (its
    per-epoch figures named as `scored_word` names them)."""
    if not validated(results):
        return FIGURES
    word = scored_word(results)
    return {key: name.replace(" val ", f" {word} " if word else " ") for key, name in VALIDATED.items()}


def compared_figure(results: Sequence[ModelResult]) -> str:
    """The figure each pair of models is tested on: best.pt's accuracy on the unseen test split where every finished
    run has one, else the final test (or validation) accuracy, which every finished run has."""
    finished = [r for r in results if r.ok and r.history]
    return "unseen_test_acc" if finished and all(r.unseen_test_acc is not None for r in finished) else "final_acc"


def run_label(r: ModelResult) -> str:
    """`lenet5 (seed-1)`: the model and its run folder, as a comparison of several seeds names its runs."""
    return f"{r.model} ({Path(r.run_dir).name})"


class Curve(NamedTuple):
    """One metric per epoch over the seeds that reached that epoch."""

    mean: list[float]
    low: list[float]
    high: list[float]


def epoch_curve(runs: list[ModelResult], key: str) -> Curve:
    """`key` of each epoch: its mean, lowest and highest value over the runs that reached that epoch."""
    length = max((len(r.history) for r in runs), default=0)
    columns = [[r.history[i][key] for r in runs if len(r.history) > i] for i in range(length)]
    return Curve([statistics.fmean(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns])


def seed_label(model: str, runs: list[ModelResult]) -> str:
    """A model's line in the seeds' curves; where seeds stopped early (--patience, --budget-seconds), the mean
    after that epoch is of fewer seeds: said so."""
    first = min(len(r.history) for r in runs)
    going = sum(len(r.history) > first for r in runs)
    stopped = f" ({going} after epoch {first}: the others stopped)" if going else ""
    return f"{model}: mean of {len(runs)} seed{'s' if len(runs) > 1 else ''}{stopped}, min..max shaded"


@dataclass
class SeedSummary:
    """One model of a comparison over several seeds: its runs and the spread of each figure over those
    that finished."""

    model: str
    runs: list[ModelResult]

    @property
    def finished(self) -> list[ModelResult]:
        """The runs that finished ("ok") with at least one epoch recorded: the ones the spreads are over."""
        return [r for r in self.runs if r.ok and r.history]

    @property
    def seeds(self) -> list[int]:
        """The seeds of the finished runs, in run order."""
        return [int(r.options["seed"]) for r in self.finished]

    def values(self, figure: str) -> list[float]:
        """`figure` (a key of FIGURES or TIMES) of each finished run, runs without it left out."""
        return [v for v in (run_figures(r)[figure] for r in self.finished) if v is not None]

    def spread(self, figure: str) -> Spread:
        """Mean and sample standard deviation of `figure` over the finished runs."""
        return spread(self.values(figure))

    @property
    def lr(self) -> float | None:
        """The runs' learning rate: as they trained at it, else as their options give it (seeds that all failed)."""
        lr = self.first("lr")
        given = next((r.options.get("lr") for r in self.runs if r.options.get("lr") is not None), None)
        return lr if lr is not None else given

    def first(self, attribute: str) -> Any:
        """A value every run of the model shares (parameters, MACs, lr), from the first run that has it."""
        return next((getattr(r, attribute) for r in self.runs if getattr(r, attribute) is not None), None)

    @property
    def status(self) -> str:
        """ok, or the runs that did not finish with their status."""
        return "; ".join(f"{Path(r.run_dir).name}: {r.status}" for r in self.runs if not r.ok) or "ok"

    def to_dict(self) -> dict[str, Any]:
        """The model's row for JSON: its seeds, run count and status, the shared values (parameters, MACs,
        input size, lr, device), each finished run's epochs, and FIGURE_mean and FIGURE_std of every figure."""
        row: dict[str, Any] = {"model": self.model, "seeds": self.seeds, "n_seeds": len(self.finished),
                               "runs": len(self.runs), "status": self.status}
        for attribute in ("params", "macs", "input_size", "device"):
            row[attribute] = self.first(attribute)
        row["lr"] = self.lr
        row["epochs"] = [r.epochs for r in self.finished]
        for figure in (*VALIDATED, *TIMES):
            mean, std, _ = self.spread(figure)
            row[f"{figure}_mean"], row[f"{figure}_std"] = mean, std
        return row


# Options the note under a table leaves out, and that do not make runs of one model settings apart: how a run was
# computed, not what (threads, the device, compiling, workers, logs), and the seed, which differs between a
# comparison's runs by design
NOT_NOTED = ("seed", "threads", "device", "compile", "compile_mode", "workers", "loader", "tensorboard",
             "memory_check", "download", "data_dir", "val_fraction_of_one_split")


def trained_options(result: ModelResult) -> dict:
    """The run's options with an lr left to its model's default as the lr it trained at (where that is known)."""
    options = dict(result.options)
    if options.get("lr") is None and result.lr is not None:
        options["lr"] = result.lr
    return options


def settings_apart(results: list[ModelResult]) -> None:
    """Runs of one model trained with other options (another lr, other epochs: a seed's run resumed for more; not
    another seed, thread count or device) are named apart, each setting a model of its own, so that their spread is
    not taken for seed-to-seed noise nor tested as one model's seeds. An lr left to the model's default is the lr
    the run trained at (one not known, of a run that never began, is no other setting)."""
    by_model: dict[str, list[ModelResult]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    for model, runs in by_model.items():
        settings = [{k: v for k, v in trained_options(r).items() if k not in NOT_NOTED} for r in runs]
        # (an lr not known, of a run that never began: no setting of its own)
        keys = sorted(k for k in set().union(*settings)
                      if len({repr(s.get(k)) for s in settings if k != "lr" or s.get(k) is not None}) > 1)
        if not keys:
            continue
        for r, setting in zip(runs, settings):
            r.model = f"{model} ({', '.join(f'{k}={_said(setting.get(k))}' for k in keys)})"
        log.warning("the runs of %s were trained with different %s: each setting is a model of its own in the "
                    "report, not seeds of one", model, ", ".join(f"`{k}`" for k in keys))


def _said(value: object) -> str:
    return "default" if value is None else str(value)


def summarize_seeds(results: list[ModelResult]) -> list[SeedSummary]:
    """The runs grouped by model, in the order the models first appear."""
    by_model: dict[str, list[ModelResult]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    return [SeedSummary(model, runs) for model, runs in by_model.items()]


def has_several_seeds(results: list[ModelResult]) -> bool:
    """True for a comparison that ran some model more than once (once per seed)."""
    return any(len(s.runs) > 1 for s in summarize_seeds(results))


class PairTest(NamedTuple):
    models: tuple[str, str]
    test: WelchTest | None  # (its `different` judged on p_adjusted where there is one)
    line: str
    p_adjusted: float | None = None  # Holm's, where several pairs were tested together


def compare_pairs(summaries: list[SeedSummary], figure: str | None = None) -> list[PairTest]:
    """Each pair of models, in the order given: is the difference in `figure` (None: `compared_figure`'s) larger
    than seed-to-seed noise?"""
    runs = [r for s in summaries for r in s.runs]
    figure = figure or compared_figure(runs)
    return pair_tests([(s.model, s.values(figure)) for s in summaries], figures_of(runs)[figure])


def pair_tests(named: Sequence[tuple[str, Sequence[float]]], figure: str = FIGURES["final_acc"],
               alpha: float = ALPHA) -> list[PairTest]:
    """Welch's test of each pair of the named samples, in the order given; where two or more pairs are tested, each
    verdict follows its Holm-adjusted p-value (`holm`), which its line gives beside the plain one."""
    raw = [(a, va, b, vb, welch_test(va, vb, alpha)) for i, (a, va) in enumerate(named) for b, vb in named[i + 1:]]
    tested = [k for k, pair in enumerate(raw) if pair[4] is not None]
    several = len(tested) > 1
    adjusted = dict(zip(tested, holm([raw[k][4].p for k in tested]))) if several else {}
    pairs = []
    for k, (a, va, b, vb, test) in enumerate(raw):
        p_adjusted = adjusted.get(k)
        if test is not None and p_adjusted is not None:
            test = test._replace(different=p_adjusted < alpha)
        holm_p = (p_adjusted, len(tested)) if p_adjusted is not None else None
        pairs.append(PairTest((a, b), test, _line(a, va, b, vb, figure, test, alpha, holm_p), p_adjusted))
    return pairs
