"""What each lifecycle state answers to each input, observed from outside.

A control_app daemon is held in one state by a steering file, then sent the
inputs a user has: the CLI commands, signals, health probes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from .control_support import ControlApp, open_control_app
from .serving_support import http_get
from .support import wait_for


@pytest.fixture
def control_app() -> Iterator[ControlApp]:
    """A control_app daemon's directory, cleaned up after the test."""
    with open_control_app() as app:
        yield app


def readyz(app: ControlApp) -> tuple[int, dict[str, object] | None]:
    """``GET /readyz`` on the daemon's unix health socket: status and body."""
    status, body, _ = asyncio.run(http_get(str(app.dir / "health.sock"), "/readyz"))
    return status, body


def test_a_manual_ready_daemon_is_starting_until_it_reports_ready(control_app: ControlApp) -> None:
    """ready="manual", main running but not ready: status and /readyz say starting, no upgrade.

    An upgrade then would hand over from a daemon never ready: its launcher
    said the start failed while the successor ran, and removed the control
    socket the successor serves.
    """
    app = control_app
    app.steer("main", "notify")
    start = app.watch("start", "control_app:main", "--pidfile", app.pidfile, "--log-file", app.log,
                      "--ready", "manual", "--health", f"unix:{app.dir}/health.sock")  # fmt: skip
    try:
        wait_for(lambda: app.records("starting") and app.control.exists(), 20, "the daemon")
        status = app.cli("status", "--pidfile", app.pidfile, "--json")
        assert status.returncode == 0, status.stderr
        assert '"state": "starting"' in status.stdout
        assert readyz(app) == (503, {"state": "starting"})
        upgrade = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "1")
        assert upgrade.returncode == 1
        assert "cannot upgrade while starting" in upgrade.stderr
        assert upgrade.stderr.rstrip().endswith("nothing started"), upgrade.stderr
        assert not app.records("upgrade started")

        app.steer("ready-release")
        code, out, err = start.finish(30)
        assert code == 0, err
        old = int(out)
        assert readyz(app) == (200, {"state": "running"})
        upgrade = app.cli("upgrade", "--pidfile", app.pidfile)
        assert upgrade.returncode == 0, upgrade.stderr
        new = int(upgrade.stdout)
        assert new != old
        status = app.cli("status", "--pidfile", app.pidfile, "--json")
        assert f'"pid": {new}' in status.stdout
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
    finally:
        start.kill()
