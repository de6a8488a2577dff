"""Upgrades that meet trouble: the old daemon killed, a stop, signals while stopping, probes."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import wait_gone
from .test_upgrade import PROGRAM, App, cli


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``aiodaemon start upgrade_app:main``."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "cli")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


@pytest.fixture
def script(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``python upgrade_app.py`` (options from APP_*)."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "script")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


def _leftovers(directory: Path) -> list[str]:
    """Pidfiles and socket files left in ``directory``."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.suffix in (".pid", ".ctl") or stat.S_ISSOCK(p.lstat().st_mode)
    )


def test_two_upgrades_then_stop_leave_nothing(script: App) -> None:
    """start, upgrade, upgrade, stop: no pidfile, no control socket, no unix socket file left."""
    directory = script.directory
    script.start(APP_LISTEN=f"unix:{directory}/http.sock", APP_HEALTH=f"unix:{directory}/h.sock")
    assert _leftovers(directory) == ["app.pid", "app.pid.ctl", "h.sock", "http.sock"]
    pids = [script.pid()]
    for _ in range(2):
        result = cli("upgrade", "--pidfile", str(script.pidfile))
        assert result.returncode == 0, result.stderr
        pids.append(int(result.stdout))
        wait_gone(pids[-2])
    stop = cli("stop", "--pidfile", str(script.pidfile))
    assert stop.returncode == 0, stop.stderr
    wait_gone(pids[-1])
    assert _leftovers(directory) == []
