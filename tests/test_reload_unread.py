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
    """Exit 1 saying the loop is held up and the reload runs once read; then it runs."""
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
            "loop is held up; the reload runs once it reads the request)\n"
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
            f"aiodaemon: still reloading after 0.5 s (pid {pid} did not answer: it is "
            "suspended (SIGSTOP); the reload runs once it is continued and reads the request)\n"
        )
        wait_for(lambda: app.reload_runs() == ["ok"], 30, "the late reload")
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
