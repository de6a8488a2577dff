"""``start`` and ``run`` beside a daemon suspended with SIGSTOP: what it is, said at once."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .control_support import ControlApp, open_control_app
from .support import is_alive, proc_state, wait_for


@pytest.fixture
def app() -> Iterator[ControlApp]:
    """A control_app directory; whatever holds its pidfile at the end is killed."""
    with open_control_app() as app:
        yield app


def _start_args(app: ControlApp, command: str = "start") -> list[str | Path]:
    # --start-timeout 60: an answer before it would be a wait, had the daemon been asked.
    return [command, "control_app:main", "--pidfile", app.pidfile, "--log-file", app.log,
            "--start-timeout", "60", "--shutdown-timeout", "60"]  # fmt: skip


def _suspend(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", 10, f"pid {pid} to be stopped")


def test_start_of_a_suspended_starting_daemon_says_so_and_fails(app: ControlApp) -> None:
    """Suspended in its startup hook: not "already running" (exit 0), but named, exit 1."""
    app.steer("startup", "wait")
    first = app.watch(*_start_args(app))
    try:
        found: list[int] = []

        def in_hook() -> bool:
            out = app.cli("status", "--pidfile", app.pidfile).stdout
            match = re.match(r"starting \(pid (\d+),", out)
            found.extend(
                [] if match is None or "waiting on startup hook" not in out else [int(match[1])]
            )
            return bool(found)

        wait_for(in_hook, 30, "the daemon in its startup hook")
        pid = found[0]
        _suspend(pid)
        for (command,) in (("start",), ("run",)):
            result = app.cli(*_start_args(app, command))
            assert (result.returncode, result.stdout) == (1, ""), result.stderr
            assert result.stderr.splitlines() == [
                f"aiodaemon: pid {pid} is starting, but suspended (SIGSTOP): it can be ready"
                " only once it is continued; nothing started"
            ]
        assert proc_state(pid) == "T"  # left as it was
        os.kill(pid, signal.SIGCONT)
        app.steer("release")
        assert first.finish()[0] == 0
    finally:
        first.kill()


def test_start_of_a_suspended_running_daemon_names_the_suspension(app: ControlApp) -> None:
    """Ready and suspended: "already running", suspension named, the usual exit codes."""
    pid = app.start()
    _suspend(pid)
    for command, code in (("start", 0), ("run", 3)):
        result = app.cli(*_start_args(app, command))
        assert (result.returncode, result.stdout) == (code, ""), result.stderr
        assert result.stderr.splitlines() == [
            f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile}; suspended (SIGSTOP))"
        ]
    assert proc_state(pid) == "T"
    os.kill(pid, signal.SIGCONT)
    assert is_alive(pid)


def test_start_of_a_suspended_stopping_daemon_says_so_at_once(app: ControlApp) -> None:
    """Suspended in its shutdown hook: named at once, exit 1, not a wait of its stop budget."""
    app.steer("shutdown", "wait")
    pid = app.start()
    os.kill(pid, signal.SIGTERM)
    wait_for(
        lambda: app.cli("status", "--pidfile", app.pidfile).stdout.startswith("stopping"),
        30,
        "the daemon in its shutdown",
    )
    _suspend(pid)
    result = app.cli(*_start_args(app), timeout=30)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.splitlines() == [
        f"aiodaemon: pid {pid} is stopping, but suspended (SIGSTOP): it exits only once"
        " it is continued; nothing started"
    ]
    assert proc_state(pid) == "T"
    os.kill(pid, signal.SIGCONT)
    app.steer("shutdown-release")
