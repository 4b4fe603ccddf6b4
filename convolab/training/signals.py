"""Stopping a run: SIGINT and SIGTERM while it fits (`stop_signals`), every rank agreeing to stop at the same step
(`should_stop`), the error that says what was saved (`TrainingInterrupted`), the command that continues the run
(`resume_command`), and the line of a run stopped by a write that failed (`stopped_writing`)."""
from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from .._atomic import RefusedWrite
from .._platform import signal_name
from .._registry import is_builtin
from ..errors import ConvolabError, DiskFullError, NotWritableError, TrainingInterrupted, way_on
from .build import Run
from .rundir import resume_call


class Stoppable(Protocol):
    """What the stop signals act on: the run, and where a signal is recorded until the loop's next step."""

    run: Run
    _stop_signal: int | None


def resume_command(run: Run) -> str:
    """The command that continues `run`, as a shell takes it (with --nproc N for a run of N processes), or from
    Python the call (`way_on`); for a model of the user's own (registered in Python, which the `convolab` command
    does not import), the call."""
    name = getattr(run.model, "model_name", "")
    if not name:
        return f"{resume_call(run.run_dir, own_model=True)} in Python, giving a model built as this run's (its " \
               "weights become last.pt's)"
    if not is_builtin(name):
        return f"{resume_call(run.run_dir)} in Python, with the module registering {name} imported"
    nproc = ["--nproc", str(run.dist.world_size)] if run.dist.enabled else []
    return way_on(shlex.join(["convolab", "train", "--resume", str(run.run_dir), *nproc]), resume_call(run.run_dir))


def stopped_writing(run: Run, err: RefusedWrite | DiskFullError, saved_epoch: int | None) -> ConvolabError:
    """The error of a run stopped by a write that failed (its folder turned read-only, its disk filled up, a file
    passed the size limit): what failed, what is intact, and how to go on (resume where the run folder holds
    config.json, else the same command again). `.what` and `.mend` keep the failure and its mending, for a caller
    that gives its own way on (a comparison's --resume)."""
    what = getattr(err, "what", None) or str(err)
    saved = f"its last.pt of epoch {saved_epoch} is intact" if saved_epoch is not None else "nothing was saved"
    mend = ("free some space" if isinstance(err, DiskFullError) else "raise the limit" if err.errno == errno.EFBIG
            else f"make {run.run_dir} writable")
    go_on = (f"continue with {resume_command(run)}" if (run.run_dir / "config.json").is_file()
             else way_on("run the same command again", "call it again"))
    stopped = (DiskFullError if isinstance(err, DiskFullError) else NotWritableError)(
        f"{what}; the run stopped ({saved}): {mend} and {go_on}")
    stopped.what, stopped.mend = what, mend
    return stopped


SIGXCPU = getattr(signal, "SIGXCPU", None)  # (POSIX; none on Windows)


def should_stop(trainer: Stoppable) -> bool:
    """A stop signal arrived (on any rank: all must stop at the same step, or the others would
    wait forever in the next all-reduce)."""
    stop = trainer.run.dist.any(trainer._stop_signal is not None)
    if stop and trainer._stop_signal is None:
        trainer._stop_signal = signal.SIGTERM
    return stop


@contextlib.contextmanager
def stop_signals(trainer: Stoppable):
    """SIGINT, SIGTERM and SIGXCPU recorded in `trainer._stop_signal` while fitting: the loop saves and stops before
    its next step. A second signal stops at once: the checkpoints already written are whole (each is
    written to a temporary file, then renamed), and the run resumes from the last one. Copies of one request
    (the --nproc launcher passes a Ctrl-C on to ranks that got it too) count once: a second signal is one
    sent a second or more after the first."""
    first: list[float] = []  # when the first signal came
    if _BETWEEN:  # (one that came between a comparison's runs, after its last check: this run stops before its step)
        trainer._stop_signal, first[:] = _BETWEEN[0][0], [_BETWEEN[0][1]]
        _BETWEEN.clear()

    def handler(signum, _frame):
        # A copy of the same request (Ctrl-C reaches the --nproc launcher and its ranks at once, and the
        # launcher passes it on) arrives within milliseconds: a second signal counts a second on. SIGXCPU (a CPU-time
        # limit's warning: `ulimit -t`, Grid Engine's s_cpu, PBS) comes again every second until the hard limit's
        # SIGKILL: its repeats are one request.
        if signum == SIGXCPU and trainer._stop_signal == SIGXCPU:
            return
        if trainer._stop_signal is None or not first or time.monotonic() - first[0] < 1.0:
            first[:] = first or [time.monotonic()]
            trainer._stop_signal = trainer._stop_signal or signum
            return
        saved = trainer.run.run_dir / "last.pt"
        raise TrainingInterrupted(
            f"stopped at once by a second signal ({signal_name(signum)}); "
            + (f"{saved} holds the state last saved" if saved.is_file() else "no epoch was saved")
            + f"; continue with: {resume_command(trainer.run)}", signum)

    previous = _installed(handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            # (past a CPU-time limit's SIGXCPU, its default action would end the process at the next one, a second
            # later, before the stop is said: ignored instead; the hard limit's SIGKILL still ends it)
            keep_going = sig == SIGXCPU and trainer._stop_signal == SIGXCPU and old == signal.SIG_DFL
            signal.signal(sig, signal.SIG_IGN if keep_going else old)


@contextlib.contextmanager
def stop_at_once(run: Run, doing: str):
    """SIGINT, SIGTERM and SIGXCPU stop at once while `doing` (work after the last step, such as the unseen test
    split's scoring, which has no step to stop before): one TrainingInterrupted naming how to go on, where SIGTERM
    ended the process without a line, and Ctrl-C said no more than "interrupted"."""
    stopped: list[float] = []  # when a signal stopped it

    def handler(signum, _frame):
        if stopped:  # (a copy of the same request: --nproc's launcher passes a signal on to ranks that got it too)
            return
        stopped.append(time.monotonic())
        raise TrainingInterrupted(f"stopped by {signal_name(signum)} {doing}; every epoch is saved: finish it with "
                                  f"{resume_command(run)}", signum)

    previous = _installed(handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            # (once stopped, the copies of its signal that come within a second are passed over, as `stop_signals`
            # passes them over; under --nproc one came while the process group closed, and ended the rank unsaid)
            signal.signal(sig, _after_copies(old, stopped[0]) if stopped else old)


@contextlib.contextmanager
def stops_between_runs() -> Iterator[Callable[[str], None]]:
    """SIGINT, SIGTERM and SIGXCPU recorded while a command goes from one run to the next (a comparison's, an
    experiment's), where no run's own handler is installed; the `stop_here(doing)` it gives raises the recorded one
    as TrainingInterrupted ("stopped by SIGINT {doing}") at the points the caller checks, and a second signal a
    second or more after the first stops at once. Before, Python's Ctrl-C came wherever the work was, inside a
    weakref's callback too, which ignores it: the command trained on. One record for the nested ones (an
    experiment's comparisons), which a run's `stop_signals` reads as it begins: a signal while an experiment's next
    comparison was set up stops it before it trains."""
    def handler(signum, _frame):
        if not _BETWEEN:
            _BETWEEN.append((signum, time.monotonic()))
        elif time.monotonic() - _BETWEEN[0][1] >= 1.0:  # (a second request, not a copy of the first)
            _BETWEEN.clear()
            raise TrainingInterrupted(f"stopped at once by a second signal ({signal_name(signum)})", signum)

    def stop_here(doing: str) -> None:
        if _BETWEEN:
            signum = _BETWEEN[0][0]
            _BETWEEN.clear()
            raise TrainingInterrupted(f"stopped by {signal_name(signum)} {doing}", signum)

    outermost = not _DEPTH
    _DEPTH.append(1)
    previous = _installed(handler)
    try:
        yield stop_here
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _DEPTH.pop()
        if outermost:
            _BETWEEN.clear()


_BETWEEN: list[tuple[int, float]] = []  # the signal `stops_between_runs` recorded, and when: one for the nested ones
_DEPTH: list[int] = []  # how many `stops_between_runs` are open


def _after_copies(old, since: float):
    """A handler that passes over the signals of the second after `since`, then acts as `old` would."""
    def handler(signum, frame):
        if time.monotonic() - since < 1.0:
            return
        signal.signal(signum, old)
        if callable(old):
            old(signum, frame)
        elif old == signal.SIG_DFL:
            os.kill(os.getpid(), signum)
    return handler


def _installed(handler) -> dict:
    """`handler` for SIGINT, SIGTERM and SIGXCPU, each but those ignored (a shell's `&` job, nohup: as Python keeps
    them), from the main thread only (another thread leaves signals alone); the handlers it replaced."""
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, *((SIGXCPU,) if SIGXCPU is not None else ())):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        pass
    return previous


__all__ = ["Stoppable", "TrainingInterrupted", "resume_command", "should_stop", "stop_at_once", "stop_signals",
           "stops_between_runs"]
