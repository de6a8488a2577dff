"""An internal error (a bug of aiodaemon's escaping its run phase) still ends in a whole log.

Before, the loop's close after such an error gave SIGTERM back its default
action for the final log drain: a SIGTERM then (systemd stopping the unit, a
user) killed the daemon mid-drain, and the records still queued, the
``internal error`` one with its traceback among them, were lost. The drain
now keeps the forced-exit rule of any shutdown: a first stop signal joins
the end, a second forces the exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    clean_env,
    full_pipe,
    kill_quietly,
    past_duplicate_window,
    proc_status,
    program,
    signal_pending,
    wait_for,
)

#: As in tests/programs/internal_error.py.
RECORDS = 200


def _ignores(pid: int, signum: int) -> bool:
    """Whether ``pid`` ignores ``signum`` (SigIgn in /proc)."""
    try:
        ignored = proc_status(pid)["SigIgn"]
    except OSError:
        return False
    return bool(int(ignored, 16) & (1 << (signum - 1)))


def _signalled_in_the_drain(
    tmp_path: Path, uvloop: bool | None, stderr: int, signum: int
) -> subprocess.Popen[bytes]:
    """Start tests/programs/internal_error.py with ``stderr`` (a full pipe); once its loop has
    closed and its final drain blocks there, send ``signum`` and wait for its delivery."""
    options = {"detach": False, "log_format": "json", "shutdown_timeout": 60, "uvloop": uvloop}
    proc = subprocess.Popen(
        [PYTHON, program("internal_error"), json.dumps(options), tmp_path / "record"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=clean_env(),
    )  # fmt: skip
    try:
        # The loop has closed (SIGHUP ignored from then on): the final drain,
        # blocked on the full pipe.
        wait_for(lambda: _ignores(proc.pid, signal.SIGHUP), what="the loop's close")
        proc.send_signal(signum)
        wait_for(
            lambda: proc.poll() is not None or not signal_pending(proc.pid, signum),
            what="its delivery",
        )
    except BaseException:
        kill_quietly(proc.pid)
        proc.wait()
        raise
    return proc


def _read_all(fd: int, into: bytearray) -> None:
    """Read ``fd`` to its end into ``into``."""
    while chunk := os.read(fd, 65536):
        into += chunk


@pytest.mark.parametrize("uvloop", [False, None], ids=["asyncio", "uvloop"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_signal_during_the_drain_after_an_internal_error_loses_no_record(
    tmp_path: Path, signum: int, uvloop: bool | None
) -> None:
    """Internal error, then SIGTERM during the final drain: every record written, status 1."""
    read_end, write_end = full_pipe()
    try:
        proc = _signalled_in_the_drain(tmp_path, uvloop, write_end, signum)
        os.close(write_end)
        write_end = -1
        output = bytearray()
        try:
            reader = threading.Thread(target=_read_all, args=(read_end, output))
            reader.start()
            assert proc.wait(timeout=30) == 1
            reader.join(30)
        finally:
            kill_quietly(proc.pid)
            proc.wait()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    lines = bytes(output).lstrip(b"x").decode().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    numbers = [r["number"] for r in records if r["event"] == "record"]
    assert numbers == list(range(RECORDS))
    events = [r["event"] for r in records]
    assert "internal error" in events
    assert events[-1] == "exit", events[-5:]


def test_a_second_stop_signal_during_that_drain_forces_the_exit(tmp_path: Path) -> None:
    """Internal error, then two SIGTERMs during the final drain: the second exits at once, 143."""
    read_end, write_end = full_pipe()
    try:
        proc = _signalled_in_the_drain(tmp_path, False, write_end, signal.SIGTERM)
        try:
            assert proc.poll() is None
            past_duplicate_window()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        finally:
            kill_quietly(proc.pid)
            proc.wait()
    finally:
        os.close(read_end)
        os.close(write_end)
