"""Review of reproduce, compare, report and the demos: an --output the system refuses, an experiment's folder
given to compare or report, the verdicts (judged as printed; resnet-cifar's ties), the Run: line's seed count,
a moved demo's typo, and the README's demo outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from convolab.cli import main
from convolab.demos import get_demo
from convolab.errors import ConfigError
from convolab.reproduce import EXPERIMENTS, write_report
from convolab.reproduce.experiments import (
    Outcome,
    batchnorm_verdict,
    degradation_verdict,
    label_smoothing_verdict,
    lecture_mnist_verdict,
    resnet_cifar_verdict,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def run(digits_run) -> Path:
    """A run trained for one epoch on the digits (tests/conftest.py)."""
    return digits_run


def one_error_line(capsys, argv: list[str]) -> str:
    """The one stderr line of a refused command (exit 2, nothing on stdout)."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and not captured.out, captured.err
    return lines[0]


# ----- 1. an --output the system refuses -----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["/sys/x", "/proc/x"])
@pytest.mark.parametrize("verb", ["compare", "reproduce", "report"])
def test_an_output_the_system_refuses_is_one_line_before_any_work(verb, where, run, capsys):
    argv = {"compare": ["compare", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress"],
            "reproduce": ["reproduce", "batchnorm", "--quick", "--data", "digits", "--no-progress"],
            "report": ["report", str(run)]}[verb]
    line = one_error_line(capsys, [*argv, "--output", where])  # (was a PermissionError's traceback, exit 1)
    assert line.startswith(f"convolab {verb}: error: --output {where} ") and "choose another folder" in line, line
    assert not Path(where).exists()


# ----- 2. an experiment's folder as compare's or report's --output ---------------------------------------------
def an_experiment(folder: Path) -> Path:
    """A `convolab reproduce` folder as far as the refusal looks: its experiment.json and curves.png."""
    folder.mkdir()
    (folder / "experiment.json").write_text(json.dumps({"format": "convolab-reproduce-1"}))
    (folder / "curves.png").write_bytes(b"the experiment's curves")
    return folder


def test_report_into_an_experiment_folder_is_refused_and_leaves_its_curves(run, tmp_path, capsys):
    folder = an_experiment(tmp_path / "bn1")
    line = one_error_line(capsys, ["report", str(run), "--output", str(folder)])
    assert f"--output {folder} holds an experiment (experiment.json); its curves.png would be overwritten" in line
    assert (folder / "curves.png").read_bytes() == b"the experiment's curves"
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "experiment.json"]


def test_compare_into_an_experiment_folder_is_refused_before_training(tmp_path, capsys):
    folder = an_experiment(tmp_path / "bn1")
    line = one_error_line(capsys, ["compare", "lenet5_modern", "--data", "digits", "--epochs", "1",
                                   "--no-progress", "--output", str(folder)])
    assert f"--output {folder} holds an experiment (experiment.json); the comparison's report would overwrite" in line
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "experiment.json"]


# ----- 3. resnet-cifar: ties are not "deeper is better" ----------------------------------------------------------
def outcome(**test_acc: float) -> Outcome:
    return Outcome({k: [[{"train_acc": a, "test_acc": a}]] for k, a in test_acc.items()})


DEPTHS = ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110")


def test_resnet_cifar_depths_all_at_chance_are_not_reproduced():
    ok, line = resnet_cifar_verdict(outcome(**dict.fromkeys(DEPTHS, 0.1)))  # (said "reproduced")
    assert not ok and line.endswith("no deeper net is better; resnet20 stayed under 30% test accuracy (it did not "
                                    "learn): not reproduced"), line


def test_resnet_cifar_needs_one_strict_fall_and_a_shallowest_net_that_learnt():
    ok, line = resnet_cifar_verdict(outcome(**dict.fromkeys(DEPTHS, 0.6)))
    assert not ok and line.endswith("; no deeper net is better: not reproduced"), line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.6, resnet32=0.6, resnet44=0.65))
    assert ok and line.endswith("resnet44 35.00%; deeper is never worse, and better at least once: reproduced"), line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.2, resnet32=0.25))  # falls, but from near chance
    assert not ok and "resnet20 stayed under 30% test accuracy" in line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.6, resnet32=0.5))
    assert not ok and line.endswith("; deeper is worse at every step: not reproduced"), line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.6, resnet32=0.5, resnet44=0.5))
    assert not ok and line.endswith("; deeper is never better, and worse at least once: not reproduced"), line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.6, resnet32=0.5, resnet44=0.55))  # worse, then better
    assert not ok and line.endswith("; deeper is not always better: not reproduced"), line


# ----- 5. the verdicts that compare means judge them as printed ---------------------------------------------------
def test_the_verdicts_judge_the_numbers_as_they_print_them():
    train = {"plain20": 0.3640, "plain56": 0.36398, "resnet20": 0.5, "resnet56": 0.6}  # errors 0.6360, 0.63602
    ok, line = degradation_verdict(outcome(**train))  # (printed "0.636 > plain20 0.636: reproduced")
    assert not ok and "plain56 final train error 0.636 <= plain20 0.636" in line, line
    ok, line = resnet_cifar_verdict(outcome(resnet20=0.6, resnet32=0.600001))  # 40.00% and 40.00%
    assert not ok and "no deeper net is better" in line, line
    ok, line = batchnorm_verdict(Outcome({"lenet5_bn": [[{"train_acc": 0.9, "test_acc": 0.90004}]],
                                          "lenet5_bn-without-bn": [[{"train_acc": 0.9, "test_acc": 0.90001}]]}))
    assert not ok and "0.9000 <= 0.9000 without its BN layers" in line, line
    ok, line = lecture_mnist_verdict(Outcome({"resnet_mnist": [[{"train_acc": 1.0, "test_acc": 0.98996}]]}))
    assert ok and "0.9900 >= 0.99" in line, line  # (printed "0.9900 < 0.99")
    peaked = [{"train_acc": 1.0, "test_acc": a} for a in (0.980, 0.991, 0.984, 0.985)]  # (the honesty review's)
    ok, line = lecture_mnist_verdict(Outcome({"resnet_mnist": [peaked], "inception_mnist": [peaked]}))
    assert not ok and "final test accuracy 0.9850 < 0.99" in line, line  # (was "best ... 0.9910 >= 0.99")
    ok, line = label_smoothing_verdict(outcome(**{"resnet20": 0.60001, "resnet20+ls0.1": 0.60004}))
    assert not ok and "0.4000 with smoothing 0.1 >= 0.4000 without" in line, line


# ----- 4. the Run: line states the seeds once ---------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:No artists with labels")  # (no run folders: curves.png has no lines)
def test_label_smoothing_run_line_states_the_seed_count_once(tmp_path):
    experiment = EXPERIMENTS["label-smoothing"]
    assert "seed" not in experiment.quick_note
    measured = Outcome({label: [[{"train_acc": 0.5, "test_acc": 0.4}]] for label in experiment.labels()})
    write_report(experiment, measured, {label: [] for label in experiment.labels()}, tmp_path, True, 1, "verdict")
    run_line = next(line for line in (tmp_path / "reproduce.md").read_text().splitlines() if line.startswith("Run:"))
    assert run_line == ("Run: quick form (at most 3,000 training and 2,000 test images, 3 epochs), 1 seed (mean +- "
                        "sample standard deviation)."), run_line  # (said "3 epochs, 2 seeds), 1 seed")


@pytest.mark.filterwarnings("ignore:No artists with labels")
def test_the_training_error_axis_label_of_an_epoch_of_15_steps_fits_in_curves_png(tmp_path, monkeypatch):
    """mnist5k's epochs of 15 steps label the axis "training error (mean of each 10 steps, 5 at an epoch's end)",
    which ran past both ends of the 4-inch-high panel, clipped as "...aining error (mean of each ... end"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    import convolab.reproduce as reproduce

    drawn = []
    monkeypatch.setattr(reproduce, "steps_label", lambda dirs: "mean of each 10 steps, 5 at an epoch's end")
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
    experiment = EXPERIMENTS["batchnorm"]
    measured = Outcome({label: [[{"train_acc": 0.5, "test_acc": 0.4}]] for label in experiment.labels()})
    write_report(experiment, measured, {label: [] for label in experiment.labels()}, tmp_path, True, 1, "verdict")
    (fig,) = drawn
    renderer = FigureCanvasAgg(fig).get_renderer()
    label = fig.axes[0].yaxis.label
    assert "5 at an epoch's end" in " ".join(label.get_text().split())
    box = label.get_window_extent(renderer)
    assert 0 <= box.y0 and box.y1 <= fig.bbox.height, (box, fig.bbox)


def test_reproduce_list_still_gives_the_seed_counts(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "3 epochs; seeds: 5 (quick: 2)" in out
    # a full form that is not its source's own schedule says whose it is (lecture-mnist's was "the paper's schedule")
    assert "full form: all of MNIST, 10 epochs of the recipe of `convolab demo resnet-mnist` (AdamW, one-cycle, " \
           "label smoothing 0.1), not the lecture's SGD;" in out
    assert "data: cifar10; full form: the paper's schedule; quick form:" in out


@pytest.mark.filterwarnings("ignore:No artists with labels")
def test_the_report_of_a_full_form_names_its_recipe(tmp_path):
    experiment = EXPERIMENTS["lecture-mnist"]
    measured = Outcome({label: [[{"train_acc": 0.99, "test_acc": 0.99}]] for label in experiment.labels()})
    write_report(experiment, measured, {label: [] for label in experiment.labels()}, tmp_path, False, 1, "verdict")
    assert "Run: full form (all of MNIST, 10 epochs of the recipe of `convolab demo resnet-mnist`" in \
        (tmp_path / "reproduce.md").read_text()


# ----- 6. a typo of a moved demo ---------------------------------------------------------------------------------
def test_a_typo_of_a_moved_demo_is_offered_its_name(capsys):
    line = one_error_line(capsys, ["demo", "batchnor"])
    assert "did you mean batchnorm?" in line and line.endswith(", resnet-mnist, batchnorm (`convolab demo --list`)")
    with pytest.raises(ConfigError, match="did you mean corr2d"):
        get_demo("corr2")  # (without moved names, as before)


# ----- 7. the README's demo outputs are the demos' own -----------------------------------------------------------
@pytest.mark.parametrize("name", ["corr2d", "shapes", "pooling", "bottleneck", "edge-kernel"])
def test_the_readme_shows_each_demo_output_whole(name):
    text = README.read_text()
    start = text.index("```text\n", text.index(f"**`convolab demo {name}`**")) + len("```text\n")
    shown = text[start:text.index("```\n", start)]
    assert shown == "".join(f"{line}\n" for line in get_demo(name).run())  # (as `convolab demo` prints them)
