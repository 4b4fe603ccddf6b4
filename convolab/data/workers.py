"""The processes that decode images (a DataLoader's workers, the image cache's pool), at their start and at exit.

Both start where a limit can refuse them: too many open files (`ulimit -n`: each worker holds pipes and queues), or
no more processes or threads (`ulimit -u`, a container's or Slurm's pids limit). torch then raises from the middle
of its start, with some workers already running; and a DataLoader's workers ignore SIGTERM (`ignore_stop_signals`),
so multiprocessing's exit handler, which ends leftover children by SIGTERM and then waits for them, waited forever:
the command printed a traceback and never exited. Here such a failure is one line saying what to do, the workers
already started are killed, and any worker still alive at exit is shut down before multiprocessing's handler runs.
"""
from __future__ import annotations

import atexit
import errno
import multiprocessing
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..errors import DataError

# The children started by the code this module watches, and the loaders whose workers persist between passes.
_STARTED: weakref.WeakSet[Any] = weakref.WeakSet()
_PERSISTENT: weakref.WeakSet[Any] = weakref.WeakSet()


@contextmanager
def worker_count_quieted() -> Iterator[None]:
    """torch's DataLoader warns that its workers outnumber the CPUs at its making and at each start of its workers,
    in a paragraph each (three for one run); `StreamingImageData` says it once, in a line of its own."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
        yield


def limit_refused(err: BaseException) -> str:
    """What limit refused a process or thread, in words, or "" where `err` is something else."""
    if isinstance(err, OSError) and err.errno in (errno.EMFILE, errno.ENFILE):
        return "too many open files (the limit of `ulimit -n`)"
    if isinstance(err, OSError) and err.errno in (errno.EAGAIN, errno.ENOMEM) \
            or isinstance(err, RuntimeError) and ("can't start new thread" in str(err)
                                                  or "cannot join thread before it is started" in str(err)):
        return "the system refused another process or thread (a limit on processes: `ulimit -u`, or a container's " \
               "or job's pids limit)"
    return ""


def kill(children: set[Any]) -> None:
    """SIGKILL and reap `children` (worker processes): they ignore SIGTERM, which would not end them."""
    for child in children:
        if child.is_alive():
            child.kill()
    for child in children:
        child.join(5)


@contextmanager
def watched(what: str, advice: str) -> Iterator[None]:
    """Start processes inside: those started are remembered (killed at exit if still alive), and a limit refusing
    one (`limit_refused`) is a DataError of one line, `what` could not start: WHY; `advice`, with the children it
    had started killed. Any other error passes through as it is."""
    before = set(multiprocessing.active_children())
    try:
        yield
    except (OSError, RuntimeError) as err:
        why = limit_refused(err)
        if not why:
            raise
        _disarm(err)  # (first: torch's SIGCHLD handler raises for a registered worker that dies)
        kill(set(multiprocessing.active_children()) - before)
        raise DataError(f"{what} could not start: {why}; {advice}") from None
    finally:
        _STARTED.update(set(multiprocessing.active_children()) - before)  # (those killed: no longer active)


def _disarm(err: BaseException) -> None:
    """Mark shut down the DataLoader iterator whose __init__ `err` came from, and unregister its workers from torch's
    SIGCHLD handler: killed, they would raise "DataLoader worker ... is killed by signal" in this process; collected,
    its __del__ would read attributes that __init__ never set ("Exception ignored ... AttributeError", torch 2.14)."""
    tb = err.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and hasattr(type(owner), "_shutdown_workers"):
            owner._shutdown = True
            if getattr(owner, "_worker_pids_set", False):
                torch.utils.data._utils.signal_handling._remove_worker_pids(id(owner))
                owner._worker_pids_set = False
        tb = tb.tb_next


def keep_persistent(loader: Any) -> None:
    """Remember a DataLoader whose workers persist between passes, to shut them down at exit if nobody did."""
    _PERSISTENT.add(loader)


def close_workers(loader: Any) -> None:
    """Shut `loader`'s persistent workers down now, with their queues' threads (each is sent its end and joined, as
    torch does when the iterator is collected); where that fails (no thread to send it: a pids limit), they are
    killed. The next pass starts new ones; nothing where none run."""
    iterator, loader._iterator = getattr(loader, "_iterator", None), None  # (torch keeps no public handle on them)
    if iterator is None or not hasattr(iterator, "_shutdown_workers"):
        return
    try:
        iterator._shutdown_workers()
    except (OSError, RuntimeError):
        kill(set(getattr(iterator, "_workers", ())))


def _at_exit(close: Callable[[Any], None] = close_workers) -> None:
    for loader in list(_PERSISTENT):
        close(loader)
    kill({child for child in list(_STARTED) if child.is_alive()})


# Registered after multiprocessing's own exit handler (torch imports multiprocessing first), so run before it.
atexit.register(_at_exit)
