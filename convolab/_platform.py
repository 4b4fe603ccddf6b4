"""What machine this is, for reports and benchmarks, and how its terminal lays text out."""
from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import platform
import signal
import stat
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1  # prctl's option: the signal this process gets when its parent dies (Linux)


@contextlib.contextmanager
def quiet_interrupt_while_starting():
    """Ctrl-C while the `convolab` command (or `python -m convolab`) is still importing its modules (torch
    takes seconds): one line and exit code 130, not a traceback from inside torch. In any other program
    that imports convolab, the KeyboardInterrupt is that program's, untouched."""
    if is_the_convolab_command():
        interrupt_exits("convolab: interrupted")
    try:
        yield
    except KeyboardInterrupt:
        if not is_the_convolab_command():
            raise
        sys.stderr.write("convolab: interrupted\n")
        raise SystemExit(130) from None


def interrupt_exits(line: str) -> None:
    """While the convolab command starts: SIGINT writes `line` and ends the process at once, exit 130. Raised as
    KeyboardInterrupt inside an import (numpy's, torch's), it would leave that module half made, and the import
    that follows fails with a traceback of its own ("cannot load module more than once per process"). Only in
    the main thread, and only where Ctrl-C is Python's (not ignored: `nohup`, a shell's background job)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, _exit_handlers.get("current")):
        return

    def stop(_signum: int, _frame: object) -> None:
        with contextlib.suppress(Exception):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        os._exit(130)

    _exit_handlers["current"] = stop
    signal.signal(signal.SIGINT, stop)


def interrupt_raises() -> None:
    """Ctrl-C is KeyboardInterrupt again, where interrupt_exits set it otherwise: the command's work handles it."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is _exit_handlers.pop("current", None):
        signal.signal(signal.SIGINT, signal.default_int_handler)


_exit_handlers: dict[str, object] = {}  # interrupt_exits' handler while it is set


def work_done() -> None:
    """SIGINT and SIGTERM passed over from now on: the command's work is done and said, and the process is ending
    (the main thread only; where they are not ignored already, as `nohup` leaves them)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def sigterm_as_interrupt(raising: type[BaseException] = KeyboardInterrupt) -> Iterator[None]:
    """SIGTERM raises `raising` (a KeyboardInterrupt) while the block runs, as Ctrl-C does, so that what it
    half made is removed on the way out (SIGTERM's default action ends the process at once and leaves it).
    Outside the main thread, signals are left alone; a handler not set from Python comes back as SIG_DFL."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise raising

    try:
        previous, installed = signal.signal(signal.SIGTERM, interrupt), True
    except ValueError:  # not the main thread
        previous, installed = None, False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def is_the_convolab_command() -> bool:
    """Whether this process is the `convolab` console script or `python -m convolab`."""
    args = list(getattr(sys, "orig_argv", sys.argv))
    as_module = any(a == "-m" and b == "convolab" for a, b in zip(args, args[1:]))
    return as_module or bool(sys.argv) and Path(sys.argv[0]).stem == "convolab"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's), and no more than its cgroup's CPU
    quota gives it (`docker run --cpus 2`, a Kubernetes CPU limit: the affinity still lists every core of the host,
    and threads past the quota only wait their turn)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, quota)) if quota is not None else cores


def cpu_quota(proc: str = "/proc", cgroups: str = "/sys/fs/cgroup") -> int | None:
    """The CPUs this process's cgroup quota allows, rounded up (v2: cpu.max "QUOTA PERIOD"; v1: cpu.cfs_quota_us /
    cpu.cfs_period_us), the least over its cgroups; None where there is none or nothing can be read."""
    try:
        lines = [line.strip().split(":", 2) for line in Path(f"{proc}/self/cgroup").read_text().splitlines()
                 if line.count(":") >= 2]
    except OSError:
        return None
    found = []
    for _, controllers, path in lines:
        try:
            if controllers == "":  # v2's one hierarchy
                quota, period = Path(f"{cgroups}{path}/cpu.max").read_text().split()[:2]
            elif "cpu" in controllers.split(","):
                base = f"{cgroups}/{controllers}{path}"
                quota, period = (Path(f"{base}/cpu.cfs_{name}_us").read_text().strip() for name in ("quota", "period"))
            else:
                continue
            if quota not in ("max", "-1") and int(period) > 0:
                found.append(-(-int(quota) // int(period)))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def busy_elsewhere(samples: int = 5, interval: float = 0.01) -> int:
    """How many other processes are running on the CPU now: the median of a few reads of /proc/stat's
    `procs_running` (which counts this one too), 0 where it cannot be read."""
    counts = []
    for i in range(samples):
        try:
            for line in Path("/proc/stat").read_text().splitlines():
                if line.startswith("procs_running"):
                    counts.append(int(line.split()[1]) - 1)
        except (OSError, ValueError):
            return 0
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, sorted(counts)[len(counts) // 2]) if counts else 0


def _writable_folder(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK)


def matplotlib_folder_for_a_command() -> None:
    """MPLCONFIGDIR set to a folder of this user's in the temporary folder where matplotlib's own configuration or
    cache folder cannot be written (a read-only or missing home, an XDG_CACHE_HOME on a read-only mount), and
    MPLCONFIGDIR is not set: matplotlib then warns on stderr at every command, in lines of its own, and builds its
    font cache again each time in a new temporary folder. Not where the configuration folder holds the user's
    matplotlibrc, which MPLCONFIGDIR would hide. For a command of its own only (the environment is the process's)."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home = Path.home()
    except RuntimeError:  # (no home at all: $HOME unset and no entry for this user)
        home = None
    if sys.platform.startswith(("linux", "freebsd")):
        bases = [os.environ.get("XDG_CONFIG_HOME") or (home and home / ".config"),
                 os.environ.get("XDG_CACHE_HOME") or (home and home / ".cache")]
        folders = [Path(base) / "matplotlib" if base else None for base in bases]
    else:
        folders = [home / ".matplotlib" if home else None]
    if all(folder is not None and _writable_folder(folder) for folder in folders):
        return
    if folders[0] is not None and (folders[0] / "matplotlibrc").is_file():  # (MPLCONFIGDIR would hide the user's own
        return  # settings: matplotlib's warning is the lesser harm)
    uid = os.getuid() if hasattr(os, "getuid") else None
    ours = Path(tempfile.gettempdir()) / f"convolab-matplotlib-{uid}"
    try:
        ours.mkdir(mode=0o700, exist_ok=True)
        held = ours.lstat()
    except OSError:
        return  # (matplotlib's own temporary folder, and its warning)
    # (this user's own folder only: a matplotlibrc another user left in a shared /tmp would configure matplotlib)
    if stat.S_ISDIR(held.st_mode) and (uid is None or held.st_uid == uid) and os.access(ours, os.W_OK):
        os.environ["MPLCONFIGDIR"] = str(ours)


def threads_for_a_shared_cpu(current: int) -> int:
    """PyTorch's CPU threads for a machine other processes may share: its `current` count, but no more than
    the cores the other running processes leave free, and at least one. Threads beyond the free cores do not
    add speed: they wait, spinning, for a thread the scheduler has parked, and a step can take several
    times as long (benchmarks/thread_contention.py measures it)."""
    return max(1, min(current, usable_cores() - busy_elsewhere()))


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the process `parent_pid` that started it dies (Linux's
    PR_SET_PDEATHSIG; elsewhere nothing). A rank of `convolab train --nproc` whose launcher was killed
    outright (SIGKILL, a CI timeout) would otherwise wait, orphaned, in its next collective operation."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before the line above: nothing will send the signal
        os.kill(os.getpid(), signal.SIGKILL)


def columns(text: str) -> int:
    """The columns `text` takes in a terminal: a wide (Chinese, Japanese, Korean) character two, a combining accent
    none (`café` decomposed, as macOS names files, is 4 columns of 5 characters)."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def padded(text: str, width: int) -> str:
    """`text` and the spaces that make it `width` columns wide (str.ljust counts characters: 猫咪 stood two columns
    out of line)."""
    return text + " " * max(0, width - columns(text))


@contextlib.contextmanager
def logging_to_stderr(enabled: bool = True) -> Iterator[None]:
    """convolab's log lines (INFO and up, the message alone) on stderr while a command or a fit runs, where nothing
    has configured logging (neither the root logger nor convolab's has a handler; in a notebook a fit's epoch lines
    were lost); the root logger, other libraries' loggers (matplotlib's INFO lines) and an application's own
    handlers are left as they are. `enabled` False: nothing added."""
    if not enabled or logging.getLogger().handlers or logging.getLogger("convolab").handlers:  # (an application's,
        # pytest's, or the command's around this fit: convolab's lines go there)
        yield
        return
    logger, handler = logging.getLogger("convolab"), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def signal_name(signum: int) -> str:
    """SIGINT, SIGTERM: a signal as users know it (`kill -l`), not its number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
