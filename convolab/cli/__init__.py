"""The `convolab` command. Each verb is a module here with `HELP`, `add_arguments(parser)` and
`run(args) -> int`; the CLI only parses and calls the library.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import pkgutil
import re
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

from .._platform import (
    die_with_parent,
    interrupt_exits,
    interrupt_raises,
    is_the_convolab_command,
    logging_to_stderr,
    matplotlib_folder_for_a_command,
    quiet_interrupt_while_starting,
    threads_for_a_shared_cpu,
    usable_cores,
    work_done,
)

with quiet_interrupt_while_starting():  # (the verbs' own modules are imported, and so guarded, in main)
    import torch

    from .._atomic import RefusedWrite, disk_full, no_space_line
    from .._version import __version__
    from ..errors import ConvolabError, saying
    from ..training import TrainingInterrupted
    from ._launch import READER_LEFT
    from ._options import as_flags, cli_message, flags_of


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr and exit code 2 (argparse adds a usage block)."""

    # What argparse takes for a negative number (a value) rather than an option: its own matcher knows only
    # -1 and -0.1, so `--lr -1e-3`, `--lr -inf` or `--seeds -1,2` was "expected one argument" instead of the
    # option's own check. No option starts with a digit: whatever does is a value (a list of numbers too).
    NEGATIVE_NUMBER = re.compile(r"^-(\d|\.\d)|^-(inf|infinity|nan)$", re.IGNORECASE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = self.NEGATIVE_NUMBER  # (every verb's parser is one of these)

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(one_line(f"{self.prog}: error: {message} (see `{self.prog} --help`)") + "\n")
        raise SystemExit(2)


def _verb_modules() -> dict[str, str]:
    """verb -> the module of this package that runs it (one module a verb, `lr_find` for `lr-find`)."""
    return {info.name.replace("_", "-"): info.name for info in pkgutil.iter_modules(__path__)
            if not info.name.startswith("_")}


def _verbs() -> dict[str, ModuleType]:
    return {verb: importlib.import_module(f"{__name__}.{module}") for verb, module in _verb_modules().items()}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="convolab", description="Classic convolutional networks: build, "
                           "inspect, train, compare, fine-tune, export.")
    parser.add_argument("--version", action="version", version=f"convolab {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=OneLineParser)
    sub.required = True
    for name, module in sorted(_verbs().items()):
        verb_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run, _parser=verb_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `convolab` command: its exit code (0, 2 for a mistake of the user's, 130 when interrupted).

    Called with `argv` (from Python) it returns that code also for an argument mistake, `--help` or `--version`,
    where argparse would raise SystemExit; the console script (no `argv`) exits through argparse as ever."""
    for stream in ("stdout", "stderr"):
        if getattr(sys, stream) is None:  # closed by the shell (2>&-): Python leaves None, which the progress bars
            setattr(sys, stream, open(os.devnull, "w"))  # and the error line wrote to (AttributeError, exit 1)
    verb = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    line = f"convolab {verb}: interrupted" if verb in _verb_modules() else "convolab: interrupted"
    if argv is None and is_the_convolab_command():
        interrupt_exits(line)  # (until the verb's work begins: see _command)
    try:
        code = _command(argv)
        if argv is None:  # the work is done, and said: a Ctrl-C or SIGTERM while the process ends (a second of torch's
            work_done()  # teardown) ends it as it would end anyway (not exit 130, without a word)
        return code
    except KeyboardInterrupt:  # Ctrl-C while the verbs' modules are still importing (torchvision takes seconds)
        _say_error(line)
        return 130
    finally:
        interrupt_raises()  # (main() in a process that goes on, a test's: Ctrl-C as it was, where a mistake in the
        # arguments left before the verb's work began; it then stayed a handler that ended the process)


# The arguments that name files or folders: a leading ~ is the home folder in each, as the shell makes it of a word
# it expands (not of --output=~/x, nor of an argument a script passes), and as --data always took it (otherwise a
# folder named "~" in the current one, whose run holds no lock, and evaluate writes beside the home's)
PATH_ARGUMENTS = ("output", "out", "data", "data_dir", "resume", "init_from", "checkpoint", "images", "run_dirs")


def expand_home(args: argparse.Namespace) -> None:
    """PATH_ARGUMENTS' leading ~ expanded; `args._spelled` maps each expanded value to the user's spelling (an error
    line names the argument as it was given)."""
    args._spelled = {}

    def expanded(value: object) -> object:
        if not (isinstance(value, str) and value.startswith("~")):
            return value
        args._spelled[os.path.expanduser(value)] = value
        return os.path.expanduser(value)

    for name in PATH_ARGUMENTS:
        if hasattr(args, name):  # (an option not given is absent: argparse.SUPPRESS, what TrainConfig defaults)
            value = getattr(args, name)
            setattr(args, name, [expanded(v) for v in value] if isinstance(value, list) else expanded(value))


def command_flags(parser: argparse.ArgumentParser, verb_parser: argparse.ArgumentParser) -> dict[str, str]:
    """The flag of each Python argument a library line may name (see errors.py): the verb's own (and the names its
    library functions give them), then any other verb's (a data set's `skip_bad_images` is --skip-bad-images
    wherever it is met)."""
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices.values()
    flags: dict[str, str] = {}
    for each in verbs:
        flags |= flags_of(each, aliases=False)
    return flags | flags_of(verb_parser)


def _command(argv: list[str] | None) -> int:
    if "CONVOLAB_LAUNCHER_PID" in os.environ:  # a rank `train --nproc` started: it ends with its launcher
        die_with_parent(int(os.environ.pop("CONVOLAB_LAUNCHER_PID")))  # (not passed on to its own children)
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the verb's parser, so the line and its --help name the verb
            args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exit_:  # argparse's, after a mistake, --help or --version
        if argv is None:  # (the console script exits, as ever)
            raise
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # for verbs that relaunch themselves
    flags = command_flags(parser, args._parser)
    expand_home(args)
    interrupt_raises()  # (the verb's work: Ctrl-C is KeyboardInterrupt again, which it handles)
    if argv is None and hasattr(sys.stdout, "reconfigure"):  # (a path the terminal cannot encode: escaped, not
        sys.stdout.reconfigure(errors="backslashreplace")   # a traceback; stderr already does so)
    if argv is None:
        matplotlib_folder_for_a_command()  # (not of main() called from Python: the caller's environment)
    try:
        if argv is None and "OMP_NUM_THREADS" not in os.environ and getattr(args, "threads", None) is None:
            # a command of its own (not main() called from Python, whose caller owns torch's threads): no more
            # threads than the cores other running processes leave free
            # (a resumed run: the threads it trained with, so that it ends as the run left alone would)
            torch.set_num_threads(recorded_threads(getattr(args, "resume", None))
                                  or threads_for_a_shared_cpu(torch.get_num_threads()))
        with logging_to_stderr(), saying(lambda line: as_flags(line, flags)):  # (its lines and log lines: flags)
            return int(args._run(args) or 0)
    except TrainingInterrupted as err:  # Ctrl-C or SIGTERM while training: what was saved, and how to go on
        _say_error(f"convolab {args.verb}: {cli_message(err, flags)}")
        return 128 + err.signum  # (130 for Ctrl-C, 143 for SIGTERM, as --nproc's launcher and lr-find give)
    except ConvolabError as err:
        _say_error(f"convolab {args.verb}: error: {cli_message(err, flags)}")
        return 2
    except RefusedWrite as err:  # an output that turned read-only, or passed a file-size limit, as it was written
        _say_error(f"convolab {args.verb}: error: {err.line}")
        return 2
    except BrokenPipeError:  # the reader left (`convolab models | head`): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error at exit's flush)
        return READER_LEFT
    except OSError as err:  # a write outside atomic_write that met a full disk, or a path no file can have
        line = unusable_path_line(args, err)
        if line is None and not disk_full(err):
            raise
        if line is None and err.filename is None:  # (a write to stdout: `> /dev/full` named "the disk of .")
            line = "no space left on the device the output is written to; free some space or write the output elsewhere"
        _say_error(f"convolab {args.verb}: error: {line or no_space_line(Path(err.filename))}")
        return 2
    except KeyboardInterrupt:
        _say_error(f"convolab {args.verb}: interrupted")
        return 130


def unusable_path_line(args: argparse.Namespace, err: OSError) -> str | None:
    """The line for a path that no file can have, which any look at it raises wherever a verb first looks (a
    Path.exists() lets ENAMETOOLONG through, a stat ELOOP): a name in it too long, or links that loop. It names
    the argument that gave the path where one did (as argparse names it), shortened past 80 characters; None
    for any other OSError."""
    if err.errno not in (errno.ENAMETOOLONG, errno.ELOOP) or err.filename is None:
        return None
    path = os.fsdecode(err.filename)
    named = _argument_of(args, path)
    flag, shown = named if named else ("", path)
    shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
    where = f"{flag} {shown}" if flag else shown
    if err.errno == errno.ELOOP:
        return (f"{where}: its symbolic links lead round in a loop, or nest deeper than the system follows "
                f"({err.strerror}); fix the links, or give another path")
    too_long = "a name in it is" if any(len(os.fsencode(part)) > 255 for part in Path(path).parts) \
        else "it is"
    return (f"{where}: {too_long} longer than the system allows ({err.strerror}); give a shorter path (rename "
            "or move the file or folder)")


def _argument_of(args: argparse.Namespace, path: str) -> tuple[str, str] | None:
    """(the argument as argparse names it, its value) for the argument whose value is `path` or the nearest
    folder above it, however either is spelled (~, ./, a trailing /); None where no argument gave it."""
    target, found = os.path.normpath(os.path.expanduser(path)), []
    for action in getattr(getattr(args, "_parser", None), "_actions", ()):
        values = getattr(args, action.dest, None)
        for value in values if isinstance(values, list) else [values]:
            given = os.path.normpath(os.path.expanduser(value)) if isinstance(value, str) and value else os.sep
            if given != os.sep and (target == given or target.startswith(given + os.sep)):
                spelled = getattr(args, "_spelled", {}).get(value, value)  # (as the user gave it: ~/...)
                found.append((len(given), "/".join(action.option_strings) or action.metavar or action.dest, spelled))
    return max(found)[1:] if found else None


def recorded_threads(folder: str | None) -> int | None:
    """The torch threads the run in `folder` (or the first run of a comparison or an experiment there) trained
    with, as its config.json records them, where this machine's cores take them: a resumed command left to choose
    by the load (one thread where another process was busy, two before) summed in another order, and ended with
    other weights than the run left alone (0.27 against 0.29)."""
    if not folder:
        return None
    # (a run's own, a comparison's runs/M/, an experiment's seed-0/runs/M/ or seed-0/arm-1/runs/M/)
    for depth in ("", "*/", "*/*/", "*/*/*/", "*/*/*/*/"):
        for path in sorted(Path(folder).glob(f"{depth}config.json")):
            try:
                threads = json.loads(path.read_text(encoding="utf-8")).get("resolved", {}).get("threads")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(threads, int) and not isinstance(threads, bool) and 0 < threads:
                return threads if threads <= usable_cores() else None
    return None


def _say_error(line: str) -> None:
    """Write the one line of a failed command to stderr. A process that `convolab train --nproc`
    started also leaves it in CONVOLAB_ERROR_FILE and, unless it is rank 0, says nothing itself:
    the launcher prints each line once, so a mistake every rank makes is not said N times. Control characters
    (a newline in a path) are shown escaped, as repr shows them: the line stays one line."""
    line = one_line(line)
    path = os.environ.get("CONVOLAB_ERROR_FILE")
    if path:
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(line + "\n")
    if not path or os.environ.get("RANK", "0") == "0":
        sys.stderr.write(line + "\n")


def one_line(text: str) -> str:
    """`text` with its control characters and line or paragraph separators escaped as repr shows them (a
    newline as \\n, \\x85, \\u2028): a message that quotes a path holding one is still one line."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
