"""``ctx.start_server`` after the daemon stopped accepting: main is cancelled, not failed.

Before, it raised RuntimeError ("the daemon is stopping"): a stop that came
while ``main`` was still getting ready (slow shutdown hooks running) ended
the daemon with status 1 and ``main failed`` with a traceback.
"""

from __future__ import annotations

from pathlib import Path

from .support import ForegroundDaemon


def test_a_stop_racing_mains_start_server_ends_with_status_0(tmp_path: Path) -> None:
    """start_server during the shutdown hooks never returns; main is cancelled at the end; 0."""
    listen = {"http": f"unix:{tmp_path / 'http.sock'}"}
    d = ForegroundDaemon(tmp_path, "serve_late", listen=listen, pidfile=str(tmp_path / "d.pid"))
    try:
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert d.recorded() == ["shutdown hook", "main cancelled"]
    events = d.events()
    assert "main failed" not in events
    assert events[-2:] == ["shutdown finished", "exit"]
    assert d.lines()[-1]["status"] == 0
    assert err == ""
