"""The test programs' wait for signals cannot sleep through one (the PEP 3143 flake).

``while True: signal.pause()`` missed a SIGTERM that came just before
``pause()``: a PEP 3143 daemon stopped right after writing its pid stayed,
about 1 in 400 on two loaded cores (``test_the_daemon_users_own_pidfile_is_used_again``
timed out waiting for its exit). The programs wait with
``tests/programs/signal_wait.py`` instead.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from .support import PROGRAMS, PYTHON, clean_env, kill_quietly, program, wait_for


def test_a_signal_noted_before_the_wait_still_ends_it(tmp_path: Path) -> None:
    """SIGTERM taken by another thread (noted, the wait not interrupted): handled, status 3."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [PYTHON, str(program("signal_wait_other_thread")), str(ready)],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, 30, "the program to wait")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert proc.returncode == 3, err


def test_no_program_waits_in_signal_pause() -> None:
    """No test program idles in ``signal.pause()``: it can miss the signal meant to end it."""
    pausing = [
        path.name
        for path in sorted(PROGRAMS.glob("*.py"))
        if re.search(r"^\s*signal\.pause\(\)", path.read_text(), re.MULTILINE)
    ]
    assert pausing == []
