"""`convolab train --nproc N`: start N training processes on this machine, supervise them, and turn
their failures into one line (what `torchrun --standalone` does, with convolab's own messages).

The library side (convolab/training/distributed.py) only joins the process group each of them finds in
its environment; starting, forwarding signals, killing stragglers and explaining a failure is CLI work.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from .._atomic import remove_dead_temporaries, temporary_prefix
from .._platform import signal_name, usable_cores
from ..training.rundir import HOLDER, typed_command

# Exit code of a rank that stopped because another one did; that one printed the cause.
PEER_LOST = 3
READER_LEFT = 128 + 13  # SIGPIPE's status: the command's reader left (`convolab train ... | head -1`), quietly
_CONSEQUENCE = "#lost-peer "  # marks such a rank's line in its CONVOLAB_ERROR_FILE
_GRACE_SECONDS = 15.0  # after one rank fails, how long the others get to notice before they are killed


# What gloo and NCCL say when the other end of a collective has gone.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo/transport",
              "NCCL communicator was aborted")


def lost_peer(err: BaseException) -> bool:
    """True for the error a rank gets from a collective once another rank has gone: gloo raises a
    plain RuntimeError ("Connection closed by peer"), from a torch.distributed call or from inside
    the backward pass, where DistributedDataParallel all-reduces the gradients."""
    if isinstance(err, dist.DistError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    if any(text in str(err) for text in _PEER_GONE):
        return True
    tb = err.__traceback__
    while tb is not None:
        if f"torch{os.sep}distributed{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def note_lost_peer(err: BaseException) -> None:
    """Leave the error in CONVOLAB_ERROR_FILE marked as a consequence, not a cause: the launcher
    shows it only if no process said why it stopped."""
    path = os.environ.get("CONVOLAB_ERROR_FILE")
    if path:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"{_CONSEQUENCE}{type(err).__name__}: {first[:300]}\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What a rank runs: `python -m convolab ARGV`, except that until its training loop takes SIGINT (to save and
# stop), a Ctrl-C ends it at once, quietly, and the launcher says "interrupted". Raised as KeyboardInterrupt, it
# could land inside an import (leaving modules half made), and its copy ms later (the terminal reaches the ranks,
# the launcher passes it on) inside the handler of the first or at interpreter shutdown: each a traceback. The
# rank starts with SIGINT blocked (see _start_rank), unblocked once its handler is in place.
RANK_ENTRY = ("import os, signal, sys\n"
              "def stop(*_):\n"
              "    for stream in (sys.stdout, sys.stderr):\n"
              "        try:\n"
              "            stream.flush()\n"
              "        except Exception:\n"
              "            pass\n"
              "    os._exit(130)\n"
              "signal.signal(signal.SIGINT, stop)\n"
              "if hasattr(signal, 'pthread_sigmask'):\n"
              "    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
              "from convolab.cli import main\n"
              "sys.exit(main())\n")
INTERRUPTED = 130  # the exit code of a rank (or a command) a Ctrl-C stopped
_REPORTS = "convolab-ranks"  # the temporary folder of the ranks' CONVOLAB_ERROR_FILEs, named after the launcher


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run `convolab ARGV` in `nproc` processes on this machine (what `torchrun --standalone` does,
    with convolab's own messages): rank r gets RANK=r, LOCAL_RANK=r, WORLD_SIZE and a free local
    MASTER_PORT. Returns the exit code of the first rank that failed for a reason of its own, else 0.

    Ctrl-C reaches the ranks with us (one process group) and a SIGINT or SIGTERM sent to this
    process alone is passed on (when called from the main thread); either way the ranks save their
    state and stop together, and this process waits for them. When a rank fails, the others stop at
    their next collective operation (quietly, with PEER_LOST); one still running after a grace period
    is killed, as torchrun does.
    """
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc))
    # share the cores this process may run on (its affinity: taskset, Slurm's --cpus-per-task), not the machine's
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // nproc)))
    # torch's C++ warnings (c10d's "TCP client failed to connect ... retrying" and its 40-line stack when a Ctrl-C
    # meets a rank still connecting) are not the user's to read; a TORCH_CPP_LOG_LEVEL of the user's own stands
    env.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    procs: list[subprocess.Popen] = []
    signals: list[int] = []  # those passed on to the ranks

    def forward(signum, _frame):
        signals.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, forward)
    except ValueError:  # not the main thread: leave signals alone (Ctrl-C still reaches the ranks)
        pass
    remove_dead_temporaries(tempfile.gettempdir(), _REPORTS)  # (those of launchers killed outright)
    reports = Path(tempfile.mkdtemp(prefix=temporary_prefix(_REPORTS), suffix=".tmp"))
    try:
        for rank in range(nproc):
            procs.append(_start_rank(argv, env | {
                "RANK": str(rank), "LOCAL_RANK": str(rank), "CONVOLAB_ERROR_FILE": str(reports / f"{rank}.txt"),
                "CONVOLAB_LAUNCHER_PID": str(os.getpid()), HOLDER: f"{os.getpid()}\n{typed_command()}"}))
        codes, killed = _wait_for_ranks(procs)
        said = [_said(reports / f"{rank}.txt") for rank in range(nproc)]
        if _interrupted(codes, killed, said, bool(signals)):
            sys.stderr.write("convolab train: interrupted\n")
            return 128 + signals[0] if signals else INTERRUPTED
        _explain_failure(nproc, codes, killed, said)
        own = [code for rank, code in enumerate(codes) if code not in (0, PEER_LOST) and rank not in killed]
        if own:
            return own[0] if own[0] > 0 else 128 - own[0]  # died of signal N: 128 + N, as a shell says
        return 1 if any(codes) else 0
    finally:
        shutil.rmtree(reports, ignore_errors=True)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _said(report: Path) -> list[str]:
    """The lines a rank wrote into its error file (none where it wrote none)."""
    return report.read_text(encoding="utf-8", errors="replace").splitlines() if report.exists() else []


def _start_rank(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
    """Start one rank with SIGINT blocked, so that a Ctrl-C before RANK_ENTRY's handler waits for it."""
    if not hasattr(signal, "pthread_sigmask"):
        return subprocess.Popen([sys.executable, "-c", RANK_ENTRY, *argv], env=env)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen([sys.executable, "-c", RANK_ENTRY, *argv], env=env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _interrupted(codes: list[int], killed: set[int], said: list[list[str]], signalled: bool) -> bool:
    """Whether a Ctrl-C or SIGTERM stopped the ranks before any said why (a rank that lost its peer to it only
    notes so): one this launcher passed on, or (from a thread, which cannot) one that every rank met."""
    if not any(codes) or any(not line.startswith(_CONSEQUENCE) for lines in said for line in lines):
        return False
    return signalled or INTERRUPTED in codes and all(
        code in (0, INTERRUPTED, PEER_LOST) or rank in killed for rank, code in enumerate(codes))


def _explain_failure(nproc: int, codes: list[int], killed: set[int], said: list[list[str]]) -> None:
    """One line on stderr for a failed job, unless rank 0 printed it already: the first other rank's
    own error (a mistake every rank makes, such as --device cuda without CUDA, is said once, not N
    times), else the rank that died of a signal, else the lost contact."""
    causes = [[line for line in lines if not line.startswith(_CONSEQUENCE)] for lines in said]
    died = [(rank, -code) for rank, code in enumerate(codes) if code < 0 and rank not in killed]
    if causes[0] or codes[0] == READER_LEFT:  # (rank 0 stopped quietly, as one process does, when its reader left)
        return
    if any(causes):
        sys.stderr.write(next(lines for lines in causes if lines)[0] + "\n")
    elif died:
        rank, signum = died[0]
        hint = " (killed, by hand or by the system's out-of-memory killer)" if signum == signal.SIGKILL else ""
        sys.stderr.write(f"convolab train: error: process {rank} of {nproc} died of {signal_name(signum)}"
                         f"{hint}; the others were stopped; the run's last.pt, where one was written, continues "
                         f"it: convolab train --resume RUN_DIR --nproc {nproc}\n")
    elif any(codes):
        lost = [line[len(_CONSEQUENCE):] for lines in said for line in lines if line.startswith(_CONSEQUENCE)]
        sys.stderr.write(f"convolab train: error: the {nproc} processes lost contact with one another"
                         f"{' (' + lost[0] + ')' if lost else ''} and none said why; run the same command "
                         "without --nproc to see the error\n")


def _wait_for_ranks(procs: list[subprocess.Popen]) -> tuple[list[int], set[int]]:
    """Every rank's exit code, and the ranks this launcher had to kill."""
    failed_at, killed = None, set()
    while True:
        codes = [proc.poll() for proc in procs]
        if all(code is not None for code in codes):
            break
        if failed_at is None and any(code for code in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > _GRACE_SECONDS:
            for rank, proc in enumerate(procs):
                if proc.poll() is None:
                    proc.kill()
                    killed.add(rank)
        time.sleep(0.05)
    return codes, killed


def strip_option(argv: Sequence[str], option: str, min_prefix: int) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE` (also argparse's abbreviations of it)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if len(name) >= min_prefix and option.startswith(name):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out
