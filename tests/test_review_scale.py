"""Faults found in this session's review (scale, option combinations, input shapes, and the left-alone list):
each test fails on the code before its fix."""
from __future__ import annotations

import fcntl
import os
import threading

from convolab.training import rundir


def test_a_claim_made_while_another_command_checks_the_folder_is_not_refused(tmp_path):
    """`in_use` (a command asking whether a run folder is being written) holds a shared lock for an instant; a
    claim in that instant was refused as "in use" though nobody held the folder. It now tries again."""
    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run / rundir.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the other command's check, under way
    release = threading.Timer(0.03, lambda: fcntl.flock(fd, fcntl.LOCK_UN))
    release.start()
    try:
        claim = rundir.claim_run_dir(run)
        assert claim is not None
        claim.release()
    finally:
        release.join()
        os.close(fd)
