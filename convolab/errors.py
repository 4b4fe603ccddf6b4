"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 2.

A message names an argument as Python spells it, in backquotes: "choose another `output`", "or give
`skip_bad_images`" (a FieldError names its field first, bare: "epochs must be >= 1, got 0"). The CLI says each by
its flag (--output, --skip-bad-images); a message names no flag of its own, only a whole command it advises
(`convolab compare --resume RUN`). Log lines follow the same rule, and so do the lines a command writes into its
files from an error (a comparison's status of a failed run): `as_said` phrases them for the user of the work under
way, and the CLI's `saying` makes them its flags. A way on that is a whole command is the Python call from Python
(`way_on`): `Trainer.resume('RUN').fit()`, not `convolab train --resume RUN`.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_PHRASING: ContextVar[Callable[[str], str] | None] = ContextVar("convolab_phrasing", default=None)


def as_said(text: str) -> str:
    """`text`, a line that names arguments in backquotes, as the user of the work under way reads it: as it is from
    Python, with the command's flags under the CLI (`saying`)."""
    phrase = _PHRASING.get()
    return phrase(text) if phrase is not None else text


def way_on(command: str, call: str) -> str:
    """How a line tells its user to go on: by `command`, a shell command (`convolab train --resume RUN`), to a user
    of the command line (while the CLI's `saying` lasts), else by `call`, the Python call
    (`Trainer.resume('RUN').fit()`)."""
    return command if on_the_command_line() else call


def on_the_command_line() -> bool:
    """Whether the work under way is a CLI verb's (its `saying` lasts), not a Python caller's."""
    return _PHRASING.get() is not None


@contextlib.contextmanager
def saying(phrase: Callable[[str], str]) -> Iterator[None]:
    """While it lasts, in this context (this thread; other threads and callers keep Python's names), `as_said`
    phrases each line so, and so is each of convolab's log records made here (the CLI: by the verb's flags)."""
    _phrase_log_records()
    token = _PHRASING.set(phrase)
    try:
        yield
    finally:
        _PHRASING.reset(token)


def _phrase_log_records() -> None:
    """The process's log record factory wrapped, once, so that convolab's records are phrased by `as_said` as they are
    made (a handler of an application or a test reads them so too); elsewhere, or outside `saying`, as they were."""
    make = logging.getLogRecordFactory()
    if getattr(make, "phrases_convolab", False):
        return

    def record(*args, **kwargs) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if _PHRASING.get() is not None and (made.name == "convolab" or made.name.startswith("convolab.")):
            try:
                text = made.getMessage()
            except Exception:  # noqa: BLE001  (arguments that do not fit: logging says so as it writes the line)
                return made
            made.msg, made.args = as_said(text), ()
        return made

    record.phrases_convolab = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)


class ConvolabError(Exception):
    """Base class: the message names the bad value and says what to do."""


class UnknownModelError(ConvolabError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(ConvolabError):
    """A data set that cannot be found, read or understood."""


class ConfigError(ConvolabError, ValueError):
    """An argument or option out of range or in conflict with another."""


class CheckpointError(ConvolabError):
    """A checkpoint that is missing, truncated, foreign or of the wrong model."""


class DiskFullError(ConvolabError, OSError):
    """A file could not be written: its disk (or quota) is full. What was there before is unchanged."""


class NotWritableError(ConvolabError, OSError):
    """A file could not be written: its folder became read-only or lost its write permission. What was
    there before is unchanged."""


class FieldError(ConfigError):
    """A value out of range for one option: `field` names it (a TrainConfig field), `problem` says what
    is wrong ("must be a positive integer, got 0"). The message names the field; the CLI names its flag."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


class RegistryError(ConfigError, RuntimeError):
    """A model registration that cannot stand: a name or alias already taken, an unknown train default.
    (Also a RuntimeError, which a name registered twice raised before.)"""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the state was saved and the run can be resumed. `signum`: the signal (the CLI exits with
    128 + it, as a shell gives a process the signal ended: 130 for SIGINT, 143 for SIGTERM). A KeyboardInterrupt, as
    Ctrl-C is: the caller's `except Exception` lets it through, and the loop of runs it stops ends (a ConvolabError
    such a loop would catch, and go on to its next run)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)
