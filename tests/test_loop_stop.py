"""``loop.stop()`` on the daemon's event loop: a graceful shutdown and a failure that says so.

Before, the loop's ``run_until_complete`` raised "Event loop stopped before
Future completed": logged as aiodaemon's "internal error", no shutdown hook
ran, and "Task was destroyed but it is pending!" lines followed on stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import ForegroundDaemon

STOPPED = "the program stopped the event loop (loop.stop()); ctx.request_shutdown() ends the daemon"


@pytest.mark.parametrize("use_uvloop", [None, False], ids=["default-loop", "asyncio"])
@pytest.mark.parametrize(
    ("where", "ran"),
    [
        ("main", ["startup hook", "main", "shutdown hook"]),
        ("startup", ["startup hook", "shutdown hook"]),
        ("shutdown", ["startup hook", "main", "shutdown hook"]),
    ],
)
def test_loop_stop_ends_the_daemon_gracefully_with_status_1(
    tmp_path: Path, use_uvloop: bool | None, where: str, ran: list[str]
) -> None:
    """loop.stop() in main, a startup or a shutdown hook: shutdown completes, one clear line, 1."""
    pidfile = tmp_path / "d.pid"
    d = ForegroundDaemon(tmp_path, "loop_stop", where, pidfile=str(pidfile), uvloop=use_uvloop)
    try:
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 1, err
    assert err == f"aiodaemon: {STOPPED}\n"
    assert d.recorded() == ran
    events = d.events()
    assert "event loop stopped by the program" in events
    assert "internal error" not in events
    assert events[-2:] == ["shutdown finished", "exit"]
    assert d.lines()[-1]["reason"] == STOPPED
    assert "ready" in events if where != "startup" else "ready" not in events
    assert not pidfile.exists()
