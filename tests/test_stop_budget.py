"""`aiodaemon stop` without --timeout waits as long as the daemon's own shutdown may take."""

from __future__ import annotations

import pytest

from .control_support import ControlApp, open_control_app


def _start(app: ControlApp, shutdown_timeout: str, *extra: str) -> int:
    result = app.cli("start", "control_app:main", "--pidfile", app.pidfile, *extra,
                     "--log-file", app.log, "--shutdown-timeout", shutdown_timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


# A 31 s shutdown hook, plus a start and a stop on a busy machine: more than the
# suite's 60 s per test would leave.
@pytest.mark.timeout(180)
def test_a_default_stop_leaves_a_long_shutdown_its_budget() -> None:
    """shutdown_timeout 40 and a 31 s shutdown hook: no SIGKILL at stop's usual 30 s."""
    with open_control_app() as app:
        pid = _start(app, "40")
        app.steer("shutdown", "slow:31")
        stop = app.cli("stop", "--pidfile", app.pidfile, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines() == [f"aiodaemon: stopped (pid {pid})"]
        assert app.records("shutdown finished")
        [exited] = app.records("exit")
    assert exited["status"] == 0


def test_an_explicit_timeout_is_kept() -> None:
    """--timeout given: SIGKILL then, whatever the daemon's budget."""
    with open_control_app() as app:
        pid = _start(app, "40")
        app.steer("shutdown", "slow:31")
        stop = app.cli("stop", "--pidfile", app.pidfile, "--timeout", "1", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines() == [
            f"aiodaemon: pid {pid} still running 1s after the stop request; sending SIGKILL",
            f"aiodaemon: killed (pid {pid}) 1s after the stop request; removed pidfile"
            f" {app.pidfile} and control socket {app.control}, which the killed daemon left",
        ]
        assert not app.records("shutdown finished")


def test_a_killed_daemon_s_unix_socket_files_are_removed() -> None:
    """SIGKILLed at --timeout: stop removes its listen= and health socket files too."""
    with open_control_app() as app:
        echo, health = app.dir / "echo.sock", app.dir / "health.sock"
        pid = _start(app, "40", "--listen", f"echo=unix:{echo}", "--health", f"unix:{health}")
        app.steer("shutdown", "slow:31")
        stop = app.cli("stop", "--pidfile", app.pidfile, "--timeout", "1", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines()[-1] == (
            f"aiodaemon: killed (pid {pid}) 1s after the stop request; removed pidfile"
            f" {app.pidfile}, control socket {app.control}, socket file {echo}"
            f" and socket file {health}, which the killed daemon left"
        )
        assert not echo.exists()
        assert not health.exists()
