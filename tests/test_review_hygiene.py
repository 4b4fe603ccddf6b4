"""convolab's calls leave the caller's process as they found it: each module's train/eval mode, the signal
handlers, the interpreter (an exit code returned, not SystemExit), os.environ and Python's random state."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from torch import nn

from convolab.analysis import count_macs, summary
from convolab.analysis.draw import architecture_graph
from convolab.cli import main
from convolab.models import create_model
from convolab.training.forecast import check_batch_statistics, estimate_cost, probe_seconds_per_image

CPU = torch.device("cpu")


def frozen_norm_resnet20() -> nn.Module:
    """resnet20 in train mode with every BatchNorm frozen (eval), as a fine-tuning caller leaves it."""
    model = create_model("resnet20", num_classes=10)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return model


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


CALLS = {
    "count_macs": lambda m: count_macs(m, (3, 32, 32)),
    "summary": lambda m: summary(m, (3, 32, 32)),
    "architecture_graph": lambda m: architecture_graph(m, (3, 32, 32)),
    "estimate_cost": lambda m: estimate_cost(m, 3, 32, CPU),
    "probe_seconds_per_image": lambda m: probe_seconds_per_image(m, 3, 32, CPU, channels_last=False),
    "check_batch_statistics": lambda m: check_batch_statistics(m, "resnet20", 1, 1, 3, 32, CPU),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_analysis_and_forecast_keep_each_modules_own_mode(call):
    """Before: these restored model.training alone (model.train(was)), so all 19 frozen BatchNorms trained again."""
    model = frozen_norm_resnet20()
    before = modes(model)
    assert sum(not m.training for m in model.modules()) == 19
    CALLS[call](model)
    assert modes(model) == before


def test_modes_kept_restores_each_modules_mode_also_after_an_exception():
    """Before: convolab.models._modes did not exist (every caller restored the top module's mode only)."""
    from convolab.models._modes import modes_kept

    model = frozen_norm_resnet20()
    before = modes(model)
    with pytest.raises(RuntimeError), modes_kept(model):
        model.eval()
        raise RuntimeError("a forward that failed")
    assert modes(model) == before
    with modes_kept(model):
        model.train()
    assert modes(model) == before


@pytest.mark.slow  # (13 s: two ranks started by main() from a thread of the caller)
def test_train_nproc_2_from_a_thread_that_is_not_main_runs_and_leaves_signals_alone(tmp_path):
    """Before: ValueError 'signal only works in main thread' from the launcher, and no exit code."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    codes: list[int] = []
    argv = ["train", "lenet5_modern", "--data", "digits", "--epochs", "1", "--batch-size", "64", "--no-progress",
            "--nproc", "2", "--output", str(tmp_path / "run")]
    thread = threading.Thread(target=lambda: codes.append(main(argv)))
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert codes == [0]
    assert (tmp_path / "run" / "last.pt").is_file()
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


@pytest.mark.parametrize("argv, code, stream", [
    (["export", "x.pt", "--output", "y.onnx"], 2, "err"),
    (["no-such-verb"], 2, "err"),
    (["train", "lenet5", "--workers", "-1"], 2, "err"),
    (["--help"], 0, "out"),
    (["train", "--help"], 0, "out"),
    (["--version"], 0, "out"),
])
def test_main_called_from_python_returns_the_code_of_a_parse_it_refused_or_finished(capsys, argv, code, stream):
    """Before: main(argv) raised SystemExit (2, or 0 after --help/--version) instead of returning the code."""
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert (out if stream == "out" else err).strip()
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "error:" in err, err


def test_the_console_script_still_exits_on_an_argument_mistake(monkeypatch, capsys):
    """(Unchanged, a guard: the console script, main() without argv, exits with argparse's SystemExit(2).)"""
    monkeypatch.setattr(sys, "argv", ["convolab", "export", "x.pt", "--output", "y.onnx"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    # (and Ctrl-C is Python's again: before, its start-up handler, which ends the process, stayed, and a test run
    # later in the same process found it in place of the default one)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


FIRST_DIGITS = """
import random, sys
from convolab.data import load_data
random.seed(3)
state = random.getstate()
assert "sklearn" not in sys.modules
load_data("digits")
assert "sklearn" in sys.modules
print(random.getstate() == state)
"""


def test_first_load_of_digits_leaves_the_random_state_as_it_was():
    """Before: the lazy `import sklearn` advanced `random` (its KMP_* variables in os.environ stay: its own
    workaround for OpenMP runtimes, which any `import sklearn` sets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMP_")}  # (this process may hold sklearn's)
    proc = subprocess.run([sys.executable, "-c", FIRST_DIGITS], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
