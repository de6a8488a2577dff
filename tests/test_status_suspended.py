"""``status`` and ``reload`` of a daemon suspended with SIGSTOP, its control backlog full or not.

Each ``status`` that gave up on a stopped daemon left one connection queued in
its control socket; once a monitor's polls filled the backlog, the next one
read "busy", fell back to the pidfile and said ``running``, exit 0. It waited
all of ``--timeout`` too, though /proc tells at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .control_support import ControlApp, open_control_app
from .support import proc_state, read_json_lines, wait_for
from .test_stop_suspended import suspended_in_shutdown
from .test_upgrade import cli


def _fill_backlog(app: ControlApp, stack: ExitStack) -> None:
    """Queue connections to the suspended daemon's control socket until it takes no more."""
    for _ in range(4096):
        conn = stack.enter_context(socket.socket(socket.AF_UNIX))
        conn.setblocking(False)
        try:
            conn.connect(str(app.control))
        except BlockingIOError:
            return  # the backlog is full: what a monitor's abandoned polls leave
        conn.sendall(b'{"v": 1, "cmd": "status"}\n')
    raise AssertionError("the control socket's backlog never filled")


@contextmanager
def _suspended(app: ControlApp) -> Iterator[int]:
    """The daemon started and SIGSTOPped, continued at the end; its pid."""
    pid = app.start()
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def test_status_of_a_suspended_daemon_is_unknown_at_once_backlog_full_or_not() -> None:
    """Exit 4 naming SIGSTOP once, before --timeout, with a free backlog and with a full one."""
    with open_control_app() as app, ExitStack() as stack:
        with _suspended(app) as pid:
            args = ("status", "--pidfile", app.pidfile, "--timeout", "60")
            free = app.cli(*args, timeout=30)
            _fill_backlog(app, stack)
            full = app.cli(*args, timeout=30)
            as_json = app.cli(*args, "--json", timeout=30)
        said = f"pid {pid} is suspended (SIGSTOP)"
        for result in (free, full):
            assert (result.returncode, result.stdout, result.stderr) == (
                4,
                f"unknown ({said}; it answers once it is continued)\n",
                "",
            )
        assert as_json.returncode == 4
        # Only stderr can say why beside the JSON.
        assert as_json.stderr == f"aiodaemon: {said}\n"
        assert json.loads(as_json.stdout)["state"] == "unknown"
        stack.close()
        assert app.cli("status", "--pidfile", app.pidfile).returncode == 0
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_reload_of_a_suspended_daemon_says_so_at_once_and_its_reload_runs_once_continued() -> None:
    """Exit 1 naming SIGSTOP before --timeout; the reload queued runs once it is continued."""
    with open_control_app() as app:
        with _suspended(app) as pid:
            result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "60", timeout=30)
        assert (result.returncode, result.stderr) == (
            1,
            f"aiodaemon: pid {pid} is suspended (SIGSTOP): the reload asked runs to its end"
            " once it is continued\n",
        )
        wait_for(lambda: app.reload_runs() == ["ok"], 30, "the reload, run once continued")
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_reload_by_sighup_of_a_suspended_daemon_says_so_as_over_its_control_socket() -> None:
    """No control socket: the same words and exit 1; the SIGHUP sent runs once continued.

    It said "reload requested (pid N, SIGHUP)", exit 0, of a reload that had not run.
    """
    with open_control_app() as app:
        pid = app.start("--no-control")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
            result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "60", timeout=30)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert (result.returncode, result.stderr) == (
            1,
            f"aiodaemon: pid {pid} is suspended (SIGSTOP): the reload asked runs to its end"
            " once it is continued\n",
        )
        wait_for(lambda: app.reload_runs() == ["ok"], 30, "the reload, run once continued")
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_reload_of_a_suspended_daemon_whose_backlog_is_full_says_suspended_not_busy() -> None:
    """Exit 1 naming SIGSTOP and the full backlog, at once; nothing reloaded."""
    with open_control_app() as app, ExitStack() as stack:
        with _suspended(app) as pid:
            _fill_backlog(app, stack)
            result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "60", timeout=30)
        assert (result.returncode, result.stderr) == (
            1,
            f"aiodaemon: pid {pid} is suspended (SIGSTOP), its control socket's backlog full;"
            " nothing reloaded\n",
        )
        stack.close()
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
        assert app.reload_runs() == []


def test_status_of_a_daemon_suspended_in_its_shutdown_is_stopping_from_the_pidfile(
    tmp_path: Path,
) -> None:
    """SIGSTOPped while it stops: ``stopping`` (0) from its stopping mark, with a warning."""
    with suspended_in_shutdown(tmp_path) as (pid, pidfile, _log, _):
        result = cli("status", "--pidfile", str(pidfile), "--timeout", "60")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"stopping (pid {pid}, pidfile {pidfile})\n",
        f"aiodaemon: warning: pid {pid} is suspended (SIGSTOP); status from the pidfile\n",
    )


@pytest.mark.parametrize("channel", ["control socket", "signal"])
@pytest.mark.parametrize("command", ["reload", "upgrade"])
def test_reload_and_upgrade_of_a_daemon_suspended_in_its_shutdown_say_it_is_stopping(
    tmp_path: Path, command: str, channel: str
) -> None:
    """Exit 1, "is stopping and suspended": reload promised a reload that never runs.

    The same words with a control socket and without (``--no-control``).
    """
    control = channel == "control socket"
    with suspended_in_shutdown(tmp_path, control=control) as (pid, pidfile, log, _):
        result = cli(command, "--pidfile", str(pidfile), "--timeout", "60")
    held = f"pid {pid} is stopping and suspended (SIGSTOP)"
    said = {
        "reload": f"{held}; nothing reloaded",
        "upgrade": f"upgrade failed: {held}; nothing started",
    }[command]
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"aiodaemon: {said}\n")
    assert not [
        r for r in read_json_lines(log) if str(r["event"]).startswith(("reload", "upgrade"))
    ]
