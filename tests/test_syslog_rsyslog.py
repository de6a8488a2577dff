"""Daemons logging to a real rsyslogd, as deployed: bursts, a stalled collector, the tag it parses.

Each test starts its own rsyslogd (the ``rsyslog`` fixture: a private Unix
socket, TCP and UDP inputs on loopback, every message into one file) and a
real daemon from ``tests/programs`` that logs to it through ``run(syslog=...)``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path

from tests.support import PYTHON, Rsyslog, clean_env, program, wait_for


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The daemon's next stdout line, failing after ``timeout``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output from the daemon within {timeout}s"
    return proc.stdout.readline()


def _records(server: Rsyslog) -> list[dict[str, object]]:
    """The JSON records rsyslogd wrote so far, in arrival order."""
    return [json.loads(msg) for *_, msg in server.messages()]


def test_a_burst_held_back_by_a_stalled_rsyslogd_arrives_whole(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    """30,000 records logged while rsyslogd is stopped all arrive once it resumes, none lost."""
    count = 30_000
    assert rsyslog.proc is not None
    # rsyslogd stops reading: its socket's queue fills at once, the writer
    # waits in send() and the daemon's queue takes the burst (it holds 32,768).
    os.kill(rsyslog.proc.pid, signal.SIGSTOP)
    try:
        daemon = subprocess.Popen(
            [PYTHON, str(program("syslog_burst")), str(rsyslog.socket), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            assert _read_line(daemon) == f"logged {count}\n"
        finally:
            os.kill(rsyslog.proc.pid, signal.SIGCONT)
        _, stderr = daemon.communicate("go on\n", timeout=60)
    finally:
        os.kill(rsyslog.proc.pid, signal.SIGCONT)
    assert daemon.returncode == 0, stderr
    wait_for(lambda: any(r["event"] == "exit" for r in _records(rsyslog)), 30, "the exit record")
    records = _records(rsyslog)
    events = [r["event"] for r in records if r["event"] != "tick"]
    # The collector was there all along, only slow: nothing was given up on.
    assert "syslog records lost" not in events
    assert "log records dropped" not in events
    assert [r["n"] for r in records if r["event"] == "tick"] == list(range(count))
    assert events[-1] == "exit"
