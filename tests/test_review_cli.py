"""Review of the command line's edge values: a seed count of billions, an lr-find range whose ratio overflows,
short lr-find curves, the argument a too-large summary or drawing names, empty strings, and negative numbers in
exponent form."""
from __future__ import annotations

import csv
import math

import pytest

from convolab.cli import main
from convolab.compare.seeds import MAX_SEEDS, seed_values
from convolab.errors import ConfigError
from convolab.training.lr_find import LRFindResult, lr_at

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # (argparse's errors leave through OneLineParser.error)
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, argv: list[str], words: str) -> str:
    """Exit code 2, one line on stderr holding `words`, nothing on stdout, no traceback: the line."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and not out, (code, out, err)
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("review-cli") / "run"
    assert main(["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--no-progress",
                 "--output", str(run)]) == 0
    return run


# ----- 1. a seed count of billions: one line, before any list of seeds is made (it was a MemoryError)

@pytest.mark.parametrize("argv", [
    ["compare", "lenet", "--seeds", "99999999999", "--output", "c"],
    ["compare", "lenet", "--seeds", "4294967295", "--output", "c"],  # (its last seed is within bounds)
    ["compare", "lenet", "--seeds", ",".join(map(str, range(MAX_SEEDS + 1))), "--output", "c"],
    ["reproduce", "degradation", "--quick", "--seeds", "99999999999"],
], ids=["compare-99999999999", "compare-4294967295", "compare-a-list-of-1001", "reproduce-99999999999"])
def test_a_seed_count_past_the_most_taken_is_one_line(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    refused(capsys, argv, f"at most {MAX_SEEDS} seeds are taken (each seed trains every model once); give fewer "
                          "seeds")
    assert list(tmp_path.iterdir()) == []


def test_seed_values_checks_the_count_before_it_makes_the_list():
    with pytest.raises(ConfigError, match="seeds 99999999999: at most 1000 seeds"):
        seed_values(99_999_999_999, first=0)
    assert seed_values(MAX_SEEDS, first=7)[-1] == MAX_SEEDS + 6
    with pytest.raises(ConfigError, match="run up to seed 4294967296"):  # the bound, as before
        seed_values(2, first=4294967295)


# ----- 2. lr-find's rates in log space: a valid range whose ratio overflows gave inf rates

def test_every_rate_of_a_range_whose_ratio_overflows_is_finite():
    for start, end in ((1e-7, 1e308), (5e-324, 1.7976931348623157e308), (1e-300, 1e300)):
        rates = [lr_at(step, start, end, 20) for step in range(20)]
        assert all(math.isfinite(r) for r in rates) and rates == sorted(rates), rates
        assert rates[0] == start and rates[-1] == end
    assert lr_at(50, 1e-4, 1e-2, 101) == pytest.approx(1e-3)  # the same curve as before on a usual range


def test_lr_find_up_to_1e308_writes_and_prints_no_inf(tmp_path, capsys):
    code, out, err = run_cli(capsys, "lr-find", "lenet5", "--data", "digits", "--end-lr", "1e308", "--steps", "20",
                             "--no-progress", "--output", str(tmp_path / "lf"))
    assert code in (0, 2) and "inf" not in out + err, out + err  # (the loss diverges: no descent, or a suggestion)
    rows = list(csv.DictReader((tmp_path / "lf" / "lr_find.csv").open()))
    assert rows and all(math.isfinite(float(r["lr"])) for r in rows)


# ----- 3. a short lr-find curve: the line says which steps the suggestions read

def test_a_short_curve_says_which_steps_were_read():
    falling = [2.0 - 0.1 * i for i in range(6)] + [1.9]
    line = LRFindResult([lr_at(i, 1e-4, 1, 7) for i in range(7)], falling, falling).summary()
    assert "suggested lr" in line and "read from steps 5-6 of 7: too short a curve to leave out the first 10 " \
        "steps and the last, which takes 13 steps of finite loss" in line, line
    long = [2.0 - 0.01 * i for i in range(30)] + [3.0]
    line = LRFindResult([lr_at(i, 1e-4, 1, 31) for i in range(31)], long, long).summary()
    assert "suggested lr" in line and "read from" not in line, line  # the documented rule holds: nothing said


# ----- 4. a tensor too large names the argument its size came from

@pytest.mark.parametrize("verb", ["summary", "draw"])
@pytest.mark.parametrize("option, words", [
    (["--in-chans", "100000000"], "--in-chans 100000000: the input 100000000x28x28 at batch 1 would be 292 GiB in "
                                  "float32"),
    (["--num-classes", "100000000000"], "--num-classes 100000000000: "),
])
def test_too_large_a_size_names_the_argument_it_came_from(tmp_path, capsys, verb, option, words):
    out = ["--out", str(tmp_path / "x.svg")] if verb == "draw" else []
    flag = option[0]
    code, _, err = run_cli(capsys, verb, "lenet5", *option, *out)
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert err.rstrip().endswith(f"give a smaller {flag}") and "--input-size" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_too_large_input_size_given_is_still_named_as_given(capsys):
    code, _, err = run_cli(capsys, "summary", "resnet18", "--input-size", "3,20000,20000", "--num-classes", "64")
    assert code == 2 and "at --input-size 3,20000,20000, conv1's output 1x64x10000x10000 would be 24 GiB" in err, err
    assert err.rstrip().endswith("give a smaller --input-size")


# ----- 5. report: an empty --output refused, and the path printed is the report's

def test_report_prints_the_path_of_the_report_it_wrote(digits_run, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "report", str(digits_run), "--output", f"{tmp_path / 'rep'}/")
    assert code == 0 and out.splitlines()[-1] == f"report: {tmp_path / 'rep' / 'report.html'}", out
    assert (tmp_path / "rep" / "report.html").is_file()


# ----- 5, 6. "" where a value is required: one line saying what to give, never the current folder or a default

EMPTY = [
    (["report", "r", "--output", ""], "argument --output: is empty; give a folder for the report"),
    (["report", "", "--output", "rep"], "argument RUN_DIR: is empty; give a run folder"),
    (["evaluate", "r", "--data", ""], "argument --data: is empty; give a data set name or an image folder/tar, or "
                                      "leave the option out for the run's own data"),
    (["evaluate", "r", "--data-dir", ""], "argument --data-dir: is empty; give a folder, or leave the option out"),
    (["evaluate", "r", "--output", ""], "argument --output: is empty; give a folder, or leave the option out"),
    (["evaluate", "r", "--weights", ""], "argument --weights: is empty; give the name of published weights"),
    (["evaluate", ""], "argument checkpoint: is empty; give a checkpoint file or run folder (or a model name with "
                       "--pretrained)"),
    (["features", "r", "--out", ""], "argument --out: is empty; give a file name such as features.npz"),
    (["features", "r", "--data", ""], "argument --data: is empty; give a data set name"),
    (["features", "", "--out", "f.npz"], "argument CHECKPOINT: is empty; give a checkpoint file or run folder"),
    (["draw", "lenet5", "--out", ""], "argument --out: is empty; give a file name such as model.svg"),
    (["summary", "lenet5", "--weights", ""], "argument --weights: is empty; give the name of published weights "
                                             "(`convolab models --pretrained`), or leave the option out"),
    (["demo", ""], "argument NAME: is empty; give a demo name (`convolab demo --list`)"),
    (["demo", "resnet-mnist", "--output", ""], "argument --output/--out: is empty; give a folder"),
    (["export", "r", "--out", ""], "argument --out: is empty; give a file (a folder for safetensors)"),
    (["export", ""], "argument checkpoint: is empty; give a checkpoint file or run folder"),
    (["predict", "r", ""], "argument images: is empty; give image files"),
    (["predict", "", "x.png"], "argument checkpoint: is empty; give a checkpoint file or run folder"),
    (["finetune", "r", "--until", ""], "argument --until: is empty; give a layer name, or leave the option out"),
    (["finetune", "", "--data", "digits"], "argument CHECKPOINT: is empty; give a checkpoint file or run folder"),
    (["compare", "--resume", ""], "argument --resume: is empty; give the comparison's folder"),
    (["reproduce", "--resume", ""], "argument --resume: is empty; give the experiment's folder"),
    (["reproduce", ""], "argument NAME: is empty; give an experiment name (`convolab reproduce --list`)"),
    # (refused since the engine side's commit da37f2b, as train's --output: here so that every verb's "" is in one
    # table)
    (["lr-find", "lenet5", "--data", "digits", "--output", ""], "argument --output: is empty; give a path"),
]


@pytest.mark.parametrize("argv, words", EMPTY, ids=[" ".join(a).replace('""', "EMPTY") or "x" for a, _ in EMPTY])
def test_an_empty_value_is_one_line_saying_what_to_give(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)  # (the old code wrote here: "" read as the current folder, or a default here)
    refused(capsys, argv, words)
    assert list(tmp_path.iterdir()) == []


# ----- 7. negative numbers in exponent form, and -inf, reach the option's own check

@pytest.mark.parametrize("argv, words", [
    (["train", "lenet", "--lr", "-1e-3"], "argument --lr: must be a positive number, got -0.001"),
    (["train", "lenet", "--lr", "-inf"], "argument --lr: must be a positive number, got -inf"),
    (["train", "lenet", "--lr", "-1E+2"], "argument --lr: must be a positive number, got -100.0"),
    (["compare", "lenet", "--weight-decay", "-.5e-1", "--output", "c"],
     "argument --weight-decay: must be a number >= 0, got -0.05"),
    (["lr-find", "lenet5", "--start-lr", "-1e-7"], "argument --start-lr: must be a positive number, got -1e-7"),
    (["summary", "lenet5", "--depth", "-1e3"], "argument --depth: expected a positive integer, got '-1e3'"),
])
def test_a_negative_number_in_exponent_form_gets_the_options_own_message(tmp_path, monkeypatch, capsys, argv,
                                                                         words):
    monkeypatch.chdir(tmp_path)
    assert "expected one argument" not in refused(capsys, argv, words)
