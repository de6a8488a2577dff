"""``reload`` of a daemon whose loop is held up past ``--timeout``: what it says is what happens.

The request waits in the control socket, unread, and the daemon runs it once
its loop reads it: the command said only "still reloading after S s (pid N
did not answer)", which read as if nothing would come of it.
"""

from __future__ import annotations

import os
import signal

from .control_support import open_control_app
from .support import proc_state, wait_for


def test_a_reload_the_held_up_daemon_has_not_read_runs_once_read_as_the_command_says() -> None:
    """Exit 1 saying the loop is held up and the reload runs once it is free; then it runs."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "block-wait")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: app.reload_runs() == ["block-wait"], 30, "the loop held up")
        app.steer("reload", "")
        try:
            result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "0.5")
        finally:
            app.steer("reload-release")
        assert result.returncode == 1
        assert result.stderr == (
            f"aiodaemon: still reloading after 0.5 s (pid {pid} did not answer: its event "
            "loop is held up; the reload runs to its end once its loop is free)\n"
        )
        wait_for(lambda: app.reload_runs() == ["block-wait", "ok"], 30, "the late reload")
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_a_reload_of_a_suspended_daemon_says_it_is_suspended_not_that_its_loop_is_held() -> None:
    """SIGSTOPped: exit 1 saying it is suspended, and the reload runs once it is continued."""
    with open_control_app() as app:
        pid = app.start()
        try:
            os.kill(pid, signal.SIGSTOP)
            wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
            result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "0.5")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert result.returncode == 1
        assert result.stderr == (
            f"aiodaemon: pid {pid} is suspended (SIGSTOP): the reload asked runs to its end"
            " once it is continued\n"
        )
        wait_for(lambda: app.reload_runs() == ["ok"], 30, "the late reload")
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_a_reload_suspended_once_under_way_says_so_at_once_as_if_suspended_before() -> None:
    """SIGSTOPped mid-reload (its hook running): exit 1 with the words of a reload that
    found it suspended, well before its --timeout, and the reload runs on once continued."""
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "wait")
        # A --timeout (and the 2 s more for the daemon's answer) the test never waits out.
        reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "300")
        try:
            wait_for(lambda: app.reload_runs() == ["wait"], 30, "the reload hook to run")
            os.kill(pid, signal.SIGSTOP)
            wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
            code, _, lines = reload.finish(timeout=40)
        finally:
            reload.kill()
            app.steer("reload-release")
            os.kill(pid, signal.SIGCONT)
        assert code == 1
        assert lines == [
            f"aiodaemon: pid {pid} is suspended (SIGSTOP): the reload asked runs to its end"
            " once it is continued"
        ]
        wait_for(lambda: app.records("reload finished"), 30, "the reload to finish")
        [finished] = app.records("reload finished")
        assert finished["ok"] is True
        assert app.reload_runs() == ["wait"]
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
