"""Ctrl-C on a ``reload`` or ``upgrade`` that waits: the daemon carries on, and the command says so.

Both exited 130 without a word, leaving the user to guess whether the reload
or the upgrade was cancelled (``start`` already said that its daemon goes on).
SIGTERM (``timeout 30 aiodaemon stop``, systemd giving up on ``ExecReload=``),
SIGHUP (a closed terminal) and SIGQUIT (Ctrl-\\) ended them silently (exit
128 + n): they now say the same, naming the signal.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from .control_support import open_control_app
from .support import wait_for, wait_gone
from .test_upgrade import App, cli, upgrade_in_background
from .test_upgrade_faults import _end_what_is_left, _successor_starting
from .test_upgrade_faults import app as app

GOES_ON = (
    "interrupted; {} the daemon took in goes on{}:"
    " `aiodaemon status --pidfile {}` tells how it ends"
)
#: An upgrade the daemon has not read when its command leaves is never started.
UNREAD = " (one it had not read yet is not started)"


def test_ctrl_c_on_a_waiting_reload_says_the_reload_goes_on() -> None:
    """The reload hook still runs to its end, and ``status`` then tells its result."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "wait")
        reload = app.watch("reload", "--pidfile", app.pidfile)
        try:
            wait_for(lambda: app.reload_runs() == ["wait"], what="the reload hook to run")
            reload.proc.send_signal(signal.SIGINT)
            code, _, lines = reload.finish()
        finally:
            reload.kill()
        assert code == 130
        assert lines == [f"aiodaemon: {GOES_ON.format('a reload', '', app.pidfile)}"]
        app.steer("reload-release")
        wait_for(lambda: app.records("reload finished"), what="the reload to finish")
        status = app.cli("status", "--pidfile", app.pidfile)
        assert status.returncode == 0, status.stderr
        assert f"running (pid {pid}," in status.stdout
        assert "last reload: ok" in status.stdout, status.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "SIGTERM"])
def test_a_signal_on_a_waiting_upgrade_says_the_upgrade_goes_on(app: App, signum: int) -> None:
    """Ctrl-C, or ``timeout`` ending it (SIGTERM): the new process takes over as it would have."""
    gate = app.directory / "gate"
    old = app.start(APP_GATE=str(gate))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade: subprocess.Popen[str] | None = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_starting(app)
        assert upgrade is not None
        upgrade.send_signal(signum)
        _, err = upgrade.communicate(timeout=30)
        assert upgrade.returncode == 128 + signum
        goes_on = GOES_ON.format("an upgrade", UNREAD, app.pidfile)
        if signum != signal.SIGINT:
            goes_on = goes_on.replace(
                "interrupted;", f"interrupted by {signal.Signals(signum).name};"
            )
        assert err.splitlines() == [f"aiodaemon: {goes_on}"]
        upgrade = None
        gate.touch()
        wait_gone(old)
        assert app.pid() == successor
        assert cli("status", "--pidfile", str(app.pidfile)).returncode == 0
    finally:
        _end_what_is_left(upgrade, successor)


def test_ctrl_c_on_a_waiting_stop_says_the_daemon_goes_on_stopping() -> None:
    """A stop that asked, interrupted, says the daemon goes on stopping (it does); exit 130."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("shutdown", "wait")
        first = app.watch("stop", "--pidfile", app.pidfile)
        stop = None
        try:
            wait_for(lambda: app.records("shutdown started"), what="the daemon to begin its stop")
            stop = app.watch("stop", "--pidfile", app.pidfile)
            waiting = f"aiodaemon: already stopping (pid {pid}); waiting"
            wait_for(lambda: stop.said(waiting), what="the second stop to wait")
            stop.proc.send_signal(signal.SIGINT)
            result = stop.finish()
            app.steer("shutdown-release")
            assert first.finish()[0] == 0
        finally:
            first.kill()
            if stop is not None:
                stop.kill()
        goes_on = f"aiodaemon: interrupted; the daemon (pid {pid}) goes on stopping"
        assert result == (130, "", [waiting, goes_on])
        wait_gone(pid)
        assert app.cli("status", "--pidfile", app.pidfile).returncode == 3


#: What else interrupts a waiting command, as ``timeout``, systemd or a closed terminal send it.
OTHER_SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]


@pytest.mark.parametrize("signum", OTHER_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_on_a_waiting_reload_says_the_reload_goes_on(signum: int) -> None:
    """Said as for Ctrl-C, naming the signal; exit 128 + n; the reload still runs to its end."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "wait")
        reload = app.watch("reload", "--pidfile", app.pidfile)
        try:
            wait_for(lambda: app.reload_runs() == ["wait"], what="the reload hook to run")
            reload.proc.send_signal(signum)
            code, _, lines = reload.finish()
        finally:
            reload.kill()
        name = signal.Signals(signum).name
        assert code == 128 + signum
        goes_on = GOES_ON.format("a reload", "", app.pidfile).replace(
            "interrupted;", f"interrupted by {name};"
        )
        assert lines == [f"aiodaemon: {goes_on}"]
        app.steer("reload-release")
        wait_for(lambda: app.records("reload finished"), what="the reload to finish")
        status = app.cli("status", "--pidfile", app.pidfile)
        assert f"running (pid {pid}," in status.stdout
        assert "last reload: ok" in status.stdout, status.stdout


@pytest.mark.parametrize("signum", OTHER_SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("command", ["stop", "restart"])
def test_a_signal_on_a_waiting_stop_says_the_daemon_goes_on_stopping(
    command: str, signum: int
) -> None:
    """A stop (or restart) that asked, interrupted by ``signum``, says so; exit 128 + n."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("shutdown", "wait")
        if command == "stop":
            waiting = app.watch("stop", "--pidfile", app.pidfile)
        else:
            waiting = app.watch("restart", "control_app:main", "--pidfile", app.pidfile,
                                "--log-file", app.log)  # fmt: skip
        try:
            wait_for(lambda: app.records("shutdown started"), what="the daemon to begin its stop")
            waiting.proc.send_signal(signum)
            result = waiting.finish()
            app.steer("shutdown-release")
        finally:
            app.steer("shutdown-release")
            waiting.kill()
        name = signal.Signals(signum).name
        nothing = "; nothing started" if command == "restart" else ""
        said = f"aiodaemon: interrupted by {name}; the daemon (pid {pid}) goes on stopping{nothing}"
        assert result == (128 + signum, "", [said])
        wait_gone(pid)
        assert app.cli("status", "--pidfile", app.pidfile).returncode == 3
        assert len(app.records("starting")) == 1  # the restart started nothing
