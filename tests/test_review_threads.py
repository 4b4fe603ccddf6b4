"""The library's process-wide state when a web app, a GUI or a job queue calls it from threads: a comparison's check
silences neither the host's logging nor, once done, its warnings; a comparison leaves the caller's random stream as
it was; Trainers made at once get their seed's weights and leave the caller's streams; a folder a Trainer of another
thread holds is refused. Each failed on the code before its fix; the races are forced by events placed in the code
by monkeypatching, not left to chance."""
from __future__ import annotations

import linecache
import logging
import re
import sys
import threading
import time
import warnings

import pytest
import torch

import convolab.compare.runner as runner
import convolab.training.build as build
import convolab.training.engine as engine
from convolab.compare import compare_models
from convolab.errors import ConfigError
from convolab.training import TrainConfig, Trainer
from convolab.training.process import quiet
from convolab.training.rundir import holder

pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/conftest.py)

WAIT = 120  # seconds: only a guard against a hang, never reached when the code is right


def small(output=None, **more) -> TrainConfig:
    return TrainConfig(**{"model": "lenet5", "data": "mnist5k", "epochs": 1, "batch_size": 50, "train_subset": 100,
                          "test_subset": 50, "progress": False, "output": output and str(output), **more})


class Job(threading.Thread):
    """A thread that keeps what its function returned or raised."""

    def __init__(self, function, *args):
        super().__init__(daemon=True)
        self.function, self.args, self.result, self.error = function, args, None, None

    def run(self):
        try:
            self.result = self.function(*self.args)
        except BaseException as err:  # noqa: BLE001  (re-raised by `done`)
            self.error = err

    def done(self):
        self.join(WAIT)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def first_weights(trainer: Trainer) -> float:
    return next(trainer.model.parameters()).detach().double().sum().item()


def test_a_comparisons_check_in_a_thread_leaves_the_hosts_logging_and_warnings(tmp_path, monkeypatch, caplog):
    # two comparisons in threads left logging.disable(WARNING) and an ignore-all warnings filter in the process for
    # good; one alone silenced the host's WARNING records in every thread while it checked its models
    inside, go, real = threading.Event(), threading.Event(), runner.build_run

    def checked(*args, **kwargs):  # the comparison's check build, paused while the host logs
        logging.getLogger("convolab").warning("said by the check")
        inside.set()
        assert go.wait(WAIT)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "build_run", checked)
    filters, disabled = list(warnings.filters), logging.root.manager.disable
    caplog.set_level(logging.INFO)
    job = Job(compare_models, ["lenet5"], small(), tmp_path / "cmp", "job")
    job.start()
    try:
        assert inside.wait(WAIT)
        logging.getLogger("host").warning("the host's warning")
        logging.getLogger("convolab").warning("said by the host's own convolab call")
    finally:
        go.set()
    job.done()
    said = [r.getMessage() for r in caplog.records]
    assert "the host's warning" in said and "said by the host's own convolab call" in said
    assert "said by the check" not in said  # (what the check is quiet for: its run says it when it trains)
    assert logging.root.manager.disable == disabled and warnings.filters == filters


def test_quiet_blocks_of_two_threads_leave_the_callers_warning_filters_when_the_last_ends():
    filters = list(warnings.filters)
    entered, first_out, second_out = threading.Event(), threading.Event(), threading.Event()

    def second():
        with quiet():
            entered.set()
            assert first_out.wait(WAIT)
            assert warnings.filters[0][0] == "ignore"  # (still quiet: the first block's end put nothing back)
        second_out.set()

    job = Job(second)
    with quiet():
        job.start()
        assert entered.wait(WAIT)
    first_out.set()
    job.done()
    assert second_out.is_set() and warnings.filters == filters


def test_a_comparison_leaves_the_callers_random_stream(tmp_path):
    # compare_models reseeded the global stream to 0 (its check's build_run): a random search drew the same value
    # in every trial after the first
    torch.manual_seed(2024)
    torch.rand(1)
    expected = torch.rand(1)
    torch.manual_seed(2024)
    torch.rand(1)
    compare_models(["lenet5"], small(), tmp_path / "cmp", "search")
    assert torch.initial_seed() == 2024
    assert torch.equal(torch.rand(1), expected)


def blocked_at_the_streams_lock(thread: threading.Thread) -> bool:
    """Whether `thread` waits at a `with STREAMS` (or enters it) in its stack: the fixed code's one build at a time."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if "STREAMS" in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            return True
        frame = frame.f_back
    return False


def test_trainers_made_at_once_in_two_threads_get_their_seeds_weights(tmp_path, monkeypatch):
    # the second seeded the global stream between the first's seeding and its draws: the same seed and config gave
    # other initial weights, and the caller could be left with a run's stream
    alone = first_weights(Trainer(small(tmp_path / "alone")))
    first, second = threading.Event(), threading.Event()
    first_drawn, real = threading.Event(), build.create_run_model
    names = {}

    def create(config, data):  # the first build pauses after its seeding until the second has seeded too
        if names.setdefault("first", threading.current_thread()) is threading.current_thread():
            first.set()
            deadline = time.monotonic() + WAIT  # (a guard against a hang only)
            while not second.is_set() and not ("second" in names and blocked_at_the_streams_lock(names["second"])):
                assert time.monotonic() < deadline, "the second build neither seeded nor waited at STREAMS"
                time.sleep(0.001)  # (the fixed code: the second waits for the first's build to end)
            made = real(config, data)
            first_drawn.set()
            return made
        second.set()
        assert first_drawn.wait(WAIT)  # (draws after the first's, as an unlucky interleaving would)
        return real(config, data)

    monkeypatch.setattr(build, "create_run_model", create)
    torch.manual_seed(2024)
    caller = torch.get_rng_state()
    a = Job(Trainer, small(tmp_path / "a"))
    a.start()
    assert first.wait(WAIT)
    names["second"] = b = Job(Trainer, small(tmp_path / "b"))
    b.start()
    assert [first_weights(a.done()), first_weights(b.done())] == [alone, alone]
    assert torch.initial_seed() == 2024 and torch.equal(torch.get_rng_state(), caller)


def test_fits_ending_in_another_order_than_they_began_leave_the_callers_streams(tmp_path, monkeypatch):
    # each fit put back the streams it found: the second found the first run's, and put them back last
    a_in, both_in, a_done = threading.Event(), threading.Barrier(2, timeout=WAIT), threading.Event()

    def fit(trainer):  # no training: the order of the fits' starts and ends is what matters
        if trainer.run.run_dir.name == "a":
            a_in.set()  # (inside its ProcessState: the second starts after)
        both_in.wait()
        if trainer.run.run_dir.name == "b":
            assert a_done.wait(WAIT)
        return None

    monkeypatch.setattr(engine, "fit", fit)
    a_trainer, b_trainer = Trainer(small(tmp_path / "a")), Trainer(small(tmp_path / "b", seed=1))
    torch.manual_seed(2024)
    caller = torch.get_rng_state()

    def fit_a():
        a_trainer.fit()
        a_done.set()

    a, b = Job(fit_a), Job(b_trainer.fit)
    a.start()
    assert a_in.wait(WAIT)
    b.start()
    a.done(), b.done()
    assert torch.initial_seed() == 2024 and torch.equal(torch.get_rng_state(), caller)


def test_a_folder_a_trainer_of_another_thread_works_in_is_refused(tmp_path, monkeypatch):
    # Trainer.resume shared the claim of the Trainer training the folder in another thread: both trained it
    run = tmp_path / "run"
    Trainer(small(run)).fit()
    inside, go = threading.Event(), threading.Event()

    def fit(trainer):  # the first job's fit, paused while the second tries the folder
        inside.set()
        assert go.wait(WAIT)

    monkeypatch.setattr(engine, "fit", fit)
    job = Job(lambda: Trainer.resume(run, epochs=2).fit())
    job.start()
    try:
        assert inside.wait(WAIT)
        in_use = re.escape(f"{run} is in use by another Trainer or comparison in this process")
        with pytest.raises(ConfigError, match=f"`run_dir` {in_use}"):
            Trainer.resume(run, epochs=3)
        with pytest.raises(ConfigError, match=in_use):
            Trainer(small(run))
        assert holder(run) == " (another thread of this process)"  # (what `report` names: not this pid)
    finally:
        go.set()
    job.done()
    assert Trainer.resume(run, epochs=2).epoch == 1  # (free once the first job's fit ended)
