"""Control commands that overlap: each caller's exit status and message stay truthful."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .control_support import ControlApp, open_control_app
from .support import is_alive, kill_quietly, wait_for

#: The control server's cap (aiodaemon._prefork._control_protocol.MAX_CONNECTIONS).
SLOTS = 32
BUSY = f"busy: {SLOTS} control connections open"


@pytest.fixture
def full() -> Iterator[tuple[ControlApp, int]]:
    """A daemon whose 32 control slots are held by reloads waiting on a held reload hook."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "wait")
        held = []
        try:
            for _ in range(SLOTS):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(str(app.control))
                conn.sendall(b'{"v": 1, "cmd": "reload", "timeout": 600}\n')
                held.append(conn)
            wait_for(lambda: app.reload_runs() == ["wait"], 30, "the held reload hook")
            wait_for(lambda: len(app.records("reload queued")) >= SLOTS - 1, 30, "32 waiters")
            yield app, pid
        finally:
            app.steer("reload-release")
            for conn in held:
                conn.close()


def test_reload_waiting_for_a_slot_of_a_daemon_killed_meanwhile_says_nothing_reloaded(
    full: tuple[ControlApp, int],
) -> None:
    """reload waiting for a control slot while its daemon is killed: exit 1, not "requested"."""
    app, pid = full
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BUSY), 30, "reload told the daemon is busy")
        kill_quietly(pid)
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 1, lines
    assert lines[-1] == f"aiodaemon: pid {pid} exited; nothing reloaded"


def test_reload_waiting_for_a_slot_of_a_daemon_stopped_meanwhile_says_nothing_reloaded(
    full: tuple[ControlApp, int],
) -> None:
    """reload waiting for a control slot while its daemon stops gracefully: exit 1, no SIGHUP."""
    app, pid = full
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BUSY), 30, "reload told the daemon is busy")
        stop = app.cli("stop", "--pidfile", app.pidfile)
        assert stop.returncode == 0, stop.stderr
        assert not is_alive(pid)
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 1, lines
    # Whichever it met: a slot during the shutdown, or the socket gone after it.
    assert lines[-1] in (
        f"aiodaemon: the daemon is stopping; nothing was reloaded (pid {pid})",
        f"aiodaemon: pid {pid} exited (its control socket is gone); nothing reloaded",
        f"aiodaemon: pid {pid} is stopping (its control socket is gone); nothing reloaded",
    ), lines
    assert not any("SIGHUP" in line for line in lines), lines
    assert [r.get("signal") for r in app.records("signal received")] in ([], ["SIGTERM"])
