"""What a backstop says when it ends a daemon: a blocked loop, or a process that was not running.

A daemon stopped (SIGSTOP, ``docker pause``) through its shutdown or start
budget passes its deadlines all at once when it resumes; the forced exit is
right, but "event loop blocked" is not why. Real daemons, real signals.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from .support import ForegroundDaemon, proc_state, wait_for

NOT_RUNNING = "process not running for at least"


def _hold_stopped(pid: int, seconds: float) -> None:
    """SIGSTOP ``pid``, keep it stopped ``seconds`` (the scenario's length), SIGCONT it."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", what="the daemon stopped")
    time.sleep(seconds)  # not a synchronisation: how long the process stays stopped
    os.kill(pid, signal.SIGCONT)


def _forced_reason(d: ForegroundDaemon) -> str:
    return str(next(line["reason"] for line in d.lines() if line["event"] == "forced exit"))


def test_a_daemon_stopped_through_its_shutdown_budget_is_said_not_running(foreground: Any) -> None:
    """TERM, then SIGSTOP past the 2 s budget: status 4, the reason names the stop, not the loop."""
    d = foreground("rt_slow_shutdown", shutdown_timeout=2)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    wait_for(lambda: d.recorded() == ["slow hook"], what="the slow hook")
    # Resumed well after the backstop's time (budget + 1 s).
    _hold_stopped(d.pid, 5.0)
    assert d.wait(timeout=30) == 4
    err = d.stderr()
    assert NOT_RUNNING in err, err
    assert "event loop blocked" not in err
    reason = _forced_reason(d)
    assert reason.startswith("shutdown took longer than 2.0s (process not running for at least")
    assert reason.endswith(": stopped, frozen, or a call blocked holding the GIL)")


def test_a_loop_blocked_in_python_code_is_still_said_blocked(foreground: Any) -> None:
    """A shutdown hook in time.sleep: the backstop runs on time and says "event loop blocked"."""
    d = foreground("rt_blocking_shutdown", shutdown_timeout=1)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=30) == 4
    assert _forced_reason(d) == "shutdown took longer than 1.0s (event loop blocked)"
    assert NOT_RUNNING not in d.stderr()


def test_a_call_holding_the_gil_past_the_budget_is_said_not_running(foreground: Any) -> None:
    """A hook blocked 4 s in C holding the GIL: no thread ran, and the reason allows for it."""
    d = foreground("rt_gil_held_shutdown", shutdown_timeout=1)
    d.wait_event("ready")
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=30) == 4
    assert d.recorded() == ["holding"]
    reason = _forced_reason(d)
    assert reason.startswith("shutdown took longer than 1.0s (process not running for at least")
    assert reason.endswith("or a call blocked holding the GIL)")


def test_a_daemon_stopped_through_its_start_budget_is_said_not_running(
    foreground: Any, tmp_path: Path
) -> None:
    """A foreground start blocked in a hook, then SIGSTOP past start + shutdown timeout: exit 1."""
    (tmp_path / "record.txt.block").touch()
    d = foreground("startup_blocks", start_timeout=1, shutdown_timeout=1)
    wait_for(lambda: d.recorded()[:1] == [f"blocking {d.pid}"], what="the blocking hook")
    _hold_stopped(d.pid, 4.0)
    assert d.wait(timeout=30) == 1
    err = d.stderr()
    assert "aiodaemon: forced exit (not ready after 1 s, process not running for at least" in err
    assert "event loop blocked" not in err
    not_ready = next(line for line in d.lines() if line["event"] == "not ready after 1 s")
    assert not_ready["process"] == "stopped"
