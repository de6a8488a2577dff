"""At a stop, ``main`` is cancelled first and its TaskGroup ends its children itself.

Before, the last step cancelled every task at once, ``main`` and its
TaskGroup's children together; the group's exit then cancelled the children a
second time, inside their own cleanup's ``await``: a flush in ``finally:``
never wrote (every time with uvloop), a job being handed back was stranded,
the exit status 0 and nothing logged.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .support import ForegroundDaemon, aiodaemon_cli, wait_for, wait_gone


@pytest.mark.parametrize("use_uvloop", [None, False], ids=["default-loop", "asyncio"])
@pytest.mark.parametrize("shape", ["taskgroup", "gather", "tasks"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_async_cleanup_in_mains_tasks_completes_at_a_stop(
    tmp_path: Path, use_uvloop: bool | None, shape: str, sig: signal.Signals
) -> None:
    """Each task's awaited cleanup finishes and logs; the stop still exits 0."""
    d = ForegroundDaemon(
        tmp_path, "taskgroup_cleanup", shape, uvloop=use_uvloop, shutdown_timeout=10
    )
    try:
        wait_for(lambda: "working" in d.recorded(), 10, "both tasks running")
        d.signal(sig)
        assert d.wait() == 0, d.stderr()
    finally:
        d.kill()
    assert sorted(d.recorded()) == ["flushed", "handed back", "working"]
    events = d.events()
    assert "flushed" in events
    assert "job handed back" in events
    assert "task stuck at shutdown" not in events
    assert events[-1] == "exit"


def test_async_cleanup_in_mains_taskgroup_completes_at_an_upgrade(tmp_path: Path) -> None:
    """The old daemon's hand-over runs the same stop: its TaskGroup's cleanup finishes."""
    pidfile = tmp_path / "d.pid"
    d = ForegroundDaemon(
        tmp_path, "taskgroup_cleanup", "taskgroup", pidfile=str(pidfile), shutdown_timeout=10
    )
    new = None
    try:
        wait_for(lambda: "working" in d.recorded(), 10, "both tasks running")
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile)
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout)
        assert d.wait() == 0, d.stderr()
        old_lines = [r for r in d.lines() if r["pid"] == d.pid]
    finally:
        d.kill()
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        if new is not None:
            wait_gone(new)
    assert stopped.returncode == 0, stopped.stderr
    events = [r["event"] for r in old_lines]
    assert "upgrade handed over" in events
    assert "flushed" in events
    assert "job handed back" in events
    assert events[-1] == "exit"
    assert old_lines[-1]["status"] == 0
