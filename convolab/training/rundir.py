"""The run folder: its default name, its creation, and the config.json that describes the run."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .._atomic import WRITTEN_BY, atomic_write, locked_file
from .._paths import check_usable, lies_within, writable_output
from ..errors import ConfigError, as_said
from .config import TrainConfig
from .run_names import data_stem, default_run_dir, next_free_dir, take_default_dir
from .safetensors_io import CONFIG_FILE
from .safetensors_io import FORMAT as SAFETENSORS_FORMAT

try:
    import fcntl
except ImportError:  # (Windows: no flock; run folders go unclaimed, as before)
    fcntl = None

LOCK_FILE = ".convolab.lock"  # the claim on a run folder: held (flock) by the one process that writes there


def refuse_output_inside_data(config: TrainConfig) -> None:
    """One line when the run folder would lie inside the image folder it trains on: the next run on that
    folder would read the run's curves as images of a class `runs`."""
    data = Path(config.data).expanduser()
    if not str(config.data).strip() or not data.is_dir():
        return
    out = Path(config.output).expanduser() if config.output else Path("runs")
    if lies_within(out, data):  # (as files: `--data Photos --output photos/run1` on macOS is inside)
        what = f"`output` {out}" if config.output else "the default output folder runs/ (in the current folder)"
        raise ConfigError(f"{what} lies inside the data folder {config.data}: its checkpoints and curves would be "
                          "read as images of a class the next time; give `output` outside it")


def prepare_run_dir(output: str | Path) -> Path:
    """`output` as a folder, created if need be; one clear line if it is a file or cannot be made or written."""
    return writable_output(output, "`output`", "folder")


RUN_FILES = ("config.json", "last.pt", "best.pt", "metrics.csv")  # what a run writes into its folder
# Every file a run writes into its folder (RUN_FILES are those that make a folder a run), and those `convolab
# evaluate RUN --output RUN` writes beside them: what an export into a run folder must not replace.
STOP_FILE = "stopped.json"  # why a run stopped short of its end without choosing to (a NaN loss): `report` says it
TEST_FILE = "test.json"  # best.pt's figures on the test split a run that validated kept unseen (`final_test`)
RUN_WRITES = (*RUN_FILES, "metrics.json", "steps.csv", "curves.png", "per_class.csv", "confusion.csv", "confusion.png",
              "targets.csv", STOP_FILE, TEST_FILE)


def record_stop(run_dir: str | Path, reason: str) -> None:
    """Write why the run in `run_dir` failed (its loss became NaN): `report` calls it failed, as `compare` did, not
    "interrupted", which a --resume would mend."""
    text = json.dumps({"reason": as_said(reason)}) + "\n"  # (as the user reads it: the command's flags, for `report`)
    atomic_write(Path(run_dir) / STOP_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def stop_reason(run_dir: str | Path) -> str | None:
    """The reason `record_stop` wrote for the run in `run_dir`, or None (none written, or unreadable)."""
    try:
        return str(json.loads((Path(run_dir) / STOP_FILE).read_text(encoding="utf-8"))["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear_stop(run_dir: str | Path) -> None:
    """A run that trains again (resumed) has not failed, or not yet."""
    with contextlib.suppress(OSError):
        (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def run_files(folder: str | Path) -> list[str]:
    """The files of a run (RUN_FILES) that `folder` holds; a safetensors export's own config.json is not one."""
    folder = Path(folder)
    found = [name for name in RUN_FILES if (folder / name).exists()] if folder.is_dir() else []
    return [] if found == [CONFIG_FILE] and _is_safetensors_config(folder / CONFIG_FILE) else found


def _is_safetensors_config(path: Path) -> bool:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("format") == SAFETENSORS_FORMAT


def forget_unsaved_run(run_dir: Path) -> None:
    """Remove the config.json of a run that saved no last.pt (its loss became NaN, or no image of its data could be
    read, in its first epoch; a fault between its first best.pt and last.pt), the files it wrote before it failed
    (best.pt, metrics, curves: the run checked that the folder held none of them before it began) and its folder if
    that is left empty, so that no run is left there and the corrected command may start again (a best.pt without
    config.json is no run to --resume, and a run to the same command)."""
    if not (run_dir / "last.pt").exists():
        with contextlib.suppress(OSError):  # (a folder turned read-only: the error that stopped the run says it)
            (run_dir / "config.json").unlink(missing_ok=True)
            for name in RUN_WRITES:
                (run_dir / name).unlink(missing_ok=True)
            (run_dir / LOCK_FILE).unlink(missing_ok=True)  # (a claim's lock follows the file, not the name)
        with contextlib.suppress(OSError):  # (a folder holding anything else stays)
            run_dir.rmdir()


def refuse_to_overwrite_a_run(output: str | Path | None) -> None:
    """One clear line when `output` already holds a run: a new run there would overwrite its checkpoints
    and metrics and leave its other files (an evaluation, exports) beside ones they do not describe."""
    if output is None:
        return
    check_usable(output, "`output`")
    found = run_files(output)
    if found:
        raise ConfigError(in_use_line(output, "`output`") if in_use(output) else holds_a_run(output, found))
    refuse_to_replace_files_of_no_run(output, "`output`")
    _CHECKED_EMPTY.add(_key(output))  # the run that claims it checks again, under its claim (claim_run_dir)


def refuse_to_replace_files_of_no_run(output: str | Path, argument: str) -> None:
    """One line when `output`, holding no run, holds files a run writes (a user's curves.png, steps.csv...), which a
    new run would replace unasked (a run that saved nothing removes its own: `forget_unsaved_run`)."""
    folder = Path(output)
    taken = [name for name in RUN_WRITES if (folder / name).exists()] if folder.is_dir() else []
    if taken:
        raise ConfigError(f"{argument} {output} holds no run but holds {', '.join(taken)}, which a run there would "
                          "replace: move them away, or give another folder")


def holds_a_run(output: str | Path, found: list[str], resume_call: str | None = None) -> str:
    """The line refusing a new run in `output`: for the command line, or with `resume_call` (`Trainer.resume(...)`,
    from Python) naming what continues it instead."""
    if resume_call is not None:
        return (f"TrainConfig(output={str(output)!r}) already holds a run ({', '.join(found)}), which a new Trainer "
                f"would overwrite; continue it with {resume_call}, or give another output folder")
    return (f"`output` {output} already holds a run ({', '.join(found)}); continue it with "
            f"`convolab train --resume {shlex.quote(str(output))}`, or give another folder")


def resume_call(run_dir: str | Path, own_model: bool = False) -> str:
    """The Python call that continues the run in `run_dir` (a model of no registered name is given again)."""
    return f"Trainer.resume({str(run_dir)!r}{', model=...' if own_model else ''}).fit()"


def refuse_a_new_run_in(output: str | Path, resume_call: str) -> None:
    """What a new Trainer checks before its work (refuse_to_overwrite_a_run for Python): one line when `output`
    holds a run, worded for the command line when that command checked the folder first."""
    found = run_files(output)
    if found and in_use(output):  # (a run still training: --resume would be refused too, until it ends)
        raise ConfigError(in_use_line(output, f"TrainConfig(output={str(output)!r}):"))
    if found:
        raise ConfigError(holds_a_run(output, found, None if _key(output) in _CHECKED_EMPTY else resume_call))
    refuse_to_replace_files_of_no_run(output, "`output`" if _key(output) in _CHECKED_EMPTY
                                      else f"TrainConfig(output={str(output)!r}):")


# ----- the claim on a run folder -------------------------------------------------------------------
# Two commands given the same --output at once would both pass refuse_to_overwrite_a_run and then mix their files;
# so the process that writes a run folder holds an exclusive flock on LOCK_FILE there for the run's life. The kernel
# drops it when the process dies (a lock file left by a killed run means nothing); the holder removes the file.
_CHECKED_EMPTY: set[str] = set()  # folders refuse_to_overwrite_a_run found holding no run, not yet claimed
_HELD: dict[str, _Lock] = {}  # this process's claims, by folder: a second Trainer of the thread shares the claim
_CLAIMS = threading.RLock()  # _HELD's changes, one thread at a time (reentrant: a share collected while one is made)


def _key(folder: str | Path) -> str:
    return str(Path(folder).expanduser().absolute().resolve())


class _Lock:
    def __init__(self, key: str, fd: int):
        self.key, self.fd, self.holders = key, fd, 0
        self.threads: dict[threading.Thread, int] = {}  # the threads that took its live shares, and how many each

    def other_thread(self) -> bool:
        """Whether a live share was taken by another thread than this one: a Trainer or comparison working there."""
        me = threading.current_thread()
        return any(thread is not me for thread in self.threads)


class RunClaim:
    """One holder's share of this process's claim on a run folder; `release` (or its collection) ends the share,
    and the claim with the last one."""

    def __init__(self, lock: _Lock):
        self._lock: _Lock | None = lock
        self._thread = threading.current_thread()
        lock.holders += 1
        lock.threads[self._thread] = lock.threads.get(self._thread, 0) + 1

    def release(self) -> None:
        """End this share (a second call does nothing); the last share removes the lock file and drops the flock."""
        with _CLAIMS:
            lock, self._lock = self._lock, None
            if lock is not None:
                self._release(lock)

    def _release(self, lock: _Lock) -> None:
        lock.holders -= 1
        lock.threads[self._thread] -= 1
        if not lock.threads[self._thread]:
            del lock.threads[self._thread]
        if lock.holders == 0 and _HELD.get(lock.key) is lock:
            del _HELD[lock.key]
            with contextlib.suppress(OSError):
                os.unlink(Path(lock.key) / LOCK_FILE)  # before the unlock: a waiting process re-checks the name
            fcntl.flock(lock.fd, fcntl.LOCK_UN)  # (for forked data-loader workers too, which share the open file)
            os.close(lock.fd)

    @property
    def held(self) -> bool:
        """True until `release` is called."""
        return self._lock is not None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # (at the interpreter's exit the kernel drops the lock anyway)
            self.release()


def claim_run_dir(run_dir: str | Path, argument: str = "`output`", new_run: str | None = None,
                  resumed: bool = False) -> RunClaim | None:
    """Claim `run_dir` for this process's run (its writer: rank 0), or one line when another convolab command
    holds it. For a new run (`new_run`: the Python call that would continue a run found there) the folder is
    checked again under the claim (a run of the same output may have ended meanwhile, or another Trainer of this
    process may have written it); a resumed run claims it as it is. None where the platform has no flock. A claim
    of this process is shared by the thread that holds it (a Trainer and its resume, a comparison and its runs), and
    refused to another thread, as to another process (two jobs of a job queue on one folder). `argument` names the
    folder in that line; `resumed`: a run resumed where it is (the line advises no other folder)."""
    key = _key(run_dir)
    resume_call = None if key in _CHECKED_EMPTY else new_run  # (checked by a command: its own wording)
    _CHECKED_EMPTY.discard(key)
    if fcntl is None:
        return None
    with _CLAIMS:
        return _claimed(key, run_dir, argument, new_run is not None, resume_call, resumed)


def _claimed(key: str, run_dir: str | Path, argument: str, new_run: bool, resume_call: str | None,
             resumed: bool) -> RunClaim | None:
    held = _HELD.get(key)
    if held is not None:
        if held.other_thread():
            raise ConfigError(in_use_line(run_dir, argument, resumed))
        return _checked(RunClaim(held), run_dir, new_run, resume_call)

    def acquire(fd: int) -> bool:
        if not _locked_exclusive(fd):
            raise ConfigError(in_use_line(run_dir, argument, resumed)) from None
        return True

    fd = locked_file(Path(key) / LOCK_FILE, acquire)
    if fd is None:  # (a folder turned read-only or removed: its first write says so)
        return None
    with contextlib.suppress(OSError):  # who holds it, for the line another command gives (`holder`)
        os.ftruncate(fd, 0)
        who = os.environ.get(HOLDER) or f"{os.getpid()}\n{typed_command()}"  # (--nproc: the launcher the user ran)
        os.pwrite(fd, f"{who}\n".encode(errors="replace"), 0)
    _HELD[key] = lock = _Lock(key, fd)
    return _checked(RunClaim(lock), run_dir, new_run, resume_call)


def _forget_claims_in_child() -> None:
    """In a forked child (a data-loader worker, the cache's decoding pool) the parent's claims stay the parent's:
    the child closes its copies of their descriptors, so that a claim ends with its process even when that is
    killed (kill -9) while its workers live on (they kept the lock, and a --resume at once was refused as "in use"),
    and forgets them, so that no release of its own unlocks them (flock's unlock would end the parent's claim)."""
    for lock in _HELD.values():
        with contextlib.suppress(OSError):
            os.close(lock.fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # (not on Windows, which has no fork and no flock)
    os.register_at_fork(after_in_child=_forget_claims_in_child)


CLAIM_TRIES = 10  # tries at the claim's lock, CLAIM_WAIT seconds apart, before the folder is said to be in use
CLAIM_WAIT = 0.01


def _locked_exclusive(fd: int) -> bool:
    """The exclusive lock on `fd`, or False where another process holds the claim. `in_use` takes a shared lock
    for an instant to check: a claim made in that instant tries again rather than calling the folder in use."""
    for attempt in range(CLAIM_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if attempt < CLAIM_TRIES - 1:
                time.sleep(CLAIM_WAIT)
    return False


def in_use_line(run_dir: str | Path, argument: str, resumed: bool = False) -> str:
    """The line for `run_dir`, which another command or thread holds; `argument` names it (`output`, the experiment)."""
    other = "" if resumed else ", or choose another folder"  # (a run is resumed where it is)
    named = f"{argument} {run_dir}"
    held = _HELD.get(_key(run_dir))
    if held is not None and held.other_thread():  # (the lock file names this process: its pid says nothing)
        return (f"{named} is in use by another Trainer or comparison in this process (another thread); "
                f"wait for it to end{other}")
    return f"{named} is in use by another convolab command{holder(run_dir)}; wait for it to end{other}"


HOLDER = "CONVOLAB_HOLDER"  # "PID\nCOMMAND" of the command a user ran, set by `train --nproc` for its ranks


def typed_command(limit: int = 160) -> str:
    """This process's command line as a user typed it (`python -m convolab` as convolab), cut to `limit`."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    name = {"__main__.py": "convolab", "-c": "python -c"}.get(name, name)
    words = [*name.split(), *sys.argv[1:]]
    text = shlex.join(words).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def holder(run_dir: str | Path) -> str:
    """" (pid N: COMMAND)" of the process whose claim holds `run_dir`, as it wrote it in the lock file; "" where
    it has not (yet) or the file cannot be read; " (another thread of this process)" for a claim of this process."""
    held = _HELD.get(_key(run_dir))
    if held is not None and held.other_thread():  # (the file names this process: its pid would say nothing)
        return " (another thread of this process)"
    try:
        pid, command = (Path(run_dir) / LOCK_FILE).read_text(errors="replace", encoding="utf-8").split("\n")[:2]
    except (OSError, ValueError):
        return ""
    return f" (pid {pid}: {command})" if pid.isdigit() and command else ""


def in_use(run_dir: str | Path) -> bool:
    """Whether another process, or another thread of this one, holds `run_dir`'s claim: a command is writing there
    (checked, not taken)."""
    if fcntl is None:
        return False
    held = _HELD.get(_key(run_dir))
    if held is not None:
        return held.other_thread()
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _checked(claim: RunClaim, run_dir: str | Path, new_run: bool, resume_call: str | None) -> RunClaim:
    found = run_files(run_dir) if new_run else []
    if found:
        claim.release()
        raise ConfigError(holds_a_run(run_dir, found, resume_call))
    return claim


def forget_check(run_dir: str | Path) -> None:
    """A resumed run claims its folder as it is: no check for a run there."""
    _CHECKED_EMPTY.discard(_key(run_dir))


RUN_FOLDERS = ("tensorboard", "evaluation")  # what a run's TensorBoard log and evaluation add to its folder


def _a_runs_own(path: Path) -> bool:
    return not path.is_symlink() and (path.is_dir() if path.name in RUN_FOLDERS else path.is_file() and (
        path.name in (*RUN_WRITES, LOCK_FILE) or WRITTEN_BY.fullmatch(path.name) is not None))


def clear_run_dir(run_dir: Path) -> RunClaim | None:
    """Empty, under its claim (returned; None: no folder), the folder of a run a comparison trains afresh (what a
    failed or interrupted attempt left). Only what a run writes goes: a link, or a folder holding anything else (a
    user's notes), is one line with nothing removed, as is one another command holds. The lock file stays."""
    if run_dir.is_symlink():
        raise ConfigError(f"{run_dir} is a link (to {os.readlink(run_dir)}), not the folder the run left; training "
                          "the run afresh would empty the folder it points to: remove the link, then resume again")
    if not run_dir.is_dir():
        return None
    claim = claim_run_dir(run_dir, "`output`")
    try:
        entries = sorted(run_dir.iterdir())
        foreign = [p.name for p in entries if not _a_runs_own(p)]
        if foreign:
            raise ConfigError(f"{run_dir} holds files that are not its run's ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}), which training the run afresh would delete: "
                              "move them out, then resume again")
        for path in entries:
            if path.name != LOCK_FILE:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    return claim


def resolved_options(run_dir: str | Path) -> dict[str, Any]:
    """The values the run in `run_dir` took for the options it left to their defaults (config.json's
    "resolved"), as those options would give them: lr, aux_weight, loss_weights, image_size. (Not amp: what
    `auto` became depends on the device, which a resumed run may change.)"""
    try:
        resolved = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("resolved")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(resolved, dict):
        return {}
    used = {name: resolved[name] for name in ("lr", "aux_weight", "loss_weights") if resolved.get(name) is not None}
    size = resolved.get("image_size")
    if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
        used["image_size"] = size[0]
    return used


# config.json's mark of a run whose model was given to Trainer(config, model=...) of no registered name: its
# config.model is not what it trains, so a resume before its first last.pt (which records "") needs model= too.
# Absent elsewhere: older files read as before, and TrainConfig.from_run ignores a key that is no option.
OWN_MODEL = "own_model"


def is_own_model_run(run_dir: str | Path) -> bool:
    """Whether `run_dir`'s config.json says its model was given of no registered name (OWN_MODEL)."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get(OWN_MODEL) is True
    except (OSError, ValueError, AttributeError):
        return False


def write_run_config(run_dir: Path, config: TrainConfig, resolved: dict[str, Any], own_model: bool = False) -> None:
    """run_dir/config.json: the options of the run (what `TrainConfig.from_run` reads back), its folder,
    and under "resolved" what the options became (learning rate, device, input size, statistics...);
    OWN_MODEL for a run of a given model of no registered name (`own_model`)."""
    values = config.to_record() | {"output": str(run_dir), "resolved": resolved}
    if own_model:
        values[OWN_MODEL] = True
    text = json.dumps(values, indent=1, default=str)
    atomic_write(run_dir / "config.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


__all__ = ["LOCK_FILE", "OWN_MODEL", "RUN_FILES", "RUN_WRITES", "TEST_FILE", "RunClaim", "claim_run_dir",
           "clear_run_dir", "data_stem", "default_run_dir", "forget_check", "forget_unsaved_run", "is_own_model_run",
           "next_free_dir", "prepare_run_dir", "refuse_a_new_run_in", "refuse_to_overwrite_a_run", "resolved_options",
           "resume_call", "take_default_dir", "write_run_config"]
