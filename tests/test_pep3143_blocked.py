"""A PEP 3143 daemon whose starter blocked SIGTERM still ends on it (daemon(7)'s reset).

A blocked mask survives ``fork`` and ``exec``: a supervisor that blocks
signals in the thread that spawns, or a wrapper like
``tests/programs/careless_starter.py``. ``run()`` resets it; ``DaemonContext``
left it, so the SIGTERM its ``signal_map`` handles stayed pending for ever and
the daemon never stopped.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .support import kill_quietly, proc_status, program, python, read_pid, wait_gone


def _mask(hexmask: str) -> set[int]:
    """Signal numbers set in a /proc status mask."""
    bits = int(hexmask, 16)
    return {n for n in range(1, 65) if bits & (1 << (n - 1))}


def test_a_daemon_started_with_sigterm_blocked_stops_on_sigterm(tmp_path: Path) -> None:
    """DaemonContext under a starter blocking SIGTERM: unblocked in the daemon, SIGTERM ends it."""
    pidfile = tmp_path / "app.pid"
    settings = json.dumps({"pidfile": str(pidfile)})
    started = python([program("careless_starter"), program("pep3143_pidfile"), settings])
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert signal.SIGTERM not in _mask(proc_status(pid)["SigBlk"])
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid, 20)
    finally:
        kill_quietly(pid)
    assert not pidfile.exists()
