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
    program,
    signal_pending,
    wait_for,
)

#: As in tests/programs/internal_error.py.
RECORDS = 200


def _ignores(pid: int, signum: int) -> bool:
    """Whether ``pid`` ignores ``signum`` (SigIgn in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask.split()[1], 16) & (1 << (signum - 1)))


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
    options = {"detach": False, "log_format": "json", "shutdown_timeout": 60, "uvloop": uvloop}
    read_end, write_end = full_pipe()
    try:
        proc = subprocess.Popen(
            [PYTHON, program("internal_error"), json.dumps(options), tmp_path / "record"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
            env=clean_env(),
        )  # fmt: skip
        os.close(write_end)
        write_end = -1
        output = bytearray()
        try:
            # The loop has closed (SIGHUP ignored from then on): the final drain,
            # blocked on the full pipe.
            wait_for(lambda: _ignores(proc.pid, signal.SIGHUP), what="the loop's close")
            proc.send_signal(signum)
            wait_for(
                lambda: proc.poll() is not None or not signal_pending(proc.pid, signum),
                what="its delivery",
            )
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
    options = {"detach": False, "log_format": "json", "shutdown_timeout": 60, "uvloop": False}
    read_end, write_end = full_pipe()
    try:
        proc = subprocess.Popen(
            [PYTHON, program("internal_error"), json.dumps(options), tmp_path / "record"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
            env=clean_env(),
        )  # fmt: skip
        try:
            wait_for(lambda: _ignores(proc.pid, signal.SIGHUP), what="the loop's close")
            proc.send_signal(signal.SIGTERM)
            wait_for(
                lambda: proc.poll() is not None or not signal_pending(proc.pid, signal.SIGTERM),
                what="its delivery",
            )
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
