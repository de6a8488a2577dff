"""An upgrade whose new process is suspended (SIGSTOP) while it starts.

The old daemon sent the successor it gave up on a SIGTERM, which a stopped
process keeps pending: it stayed stopped until its SIGKILL ``shutdown_timeout``
+ 1 s later, holding the inherited sockets and the pidfile's descriptor, a
retried ``upgrade`` was refused ("is still stopping") and a ``stop`` of the
old daemon waited for it all that time. It is continued after its SIGTERM
now, as ``aiodaemon stop`` continues a suspended daemon; so it is by the
``upgrade`` command's own SIGTERM, which it sends when the daemon has no
control socket.
"""

from __future__ import annotations

import os
import signal
import subprocess

from .support import clean_env, is_alive, kill_quietly, proc_state, wait_for, wait_gone
from .test_upgrade import SCRIPT, App, cli
from .test_upgrade_faults import _successor_starting, app

#: Long enough that the successor's SIGKILL (this + 1 s after its SIGTERM) never
#: comes within the test: only a graceful stop ends it in time.
_SHUTDOWN_TIMEOUT = "120"

__all__ = ["app"]  # the fixture, shared with test_upgrade_faults


def _upgrade_stopping_its_new_process(app: App) -> tuple[int, int, str]:
    """Run an upgrade whose new process is SIGSTOPped as it starts: (its pid, exit code, stderr)."""
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = subprocess.Popen(
        [str(SCRIPT), "upgrade", "--pidfile", str(app.pidfile), "--timeout", "3"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    new = None
    try:
        new = _successor_starting(app)
        os.kill(new, signal.SIGSTOP)
        wait_for(lambda: proc_state(new) == "T", 10, "the new process to be stopped")
        _, stderr = upgrade.communicate(timeout=60)
    except BaseException:
        upgrade.kill()
        upgrade.communicate()
        if new is not None and is_alive(new):
            kill_quietly(new)
        raise
    return new, upgrade.returncode, stderr


def _suspended_successor_given_up(app: App) -> int:
    """Run an upgrade whose new process is SIGSTOPped as it starts; its pid, once given up."""
    successor, code, stderr = _upgrade_stopping_its_new_process(app)
    assert code == 1
    assert stderr == (
        f"aiodaemon: upgrade failed: successor (pid {successor}) not ready after 3 s; "
        f"sent it SIGTERM (SIGKILL if still running {int(_SHUTDOWN_TIMEOUT) + 1} s later)\n"
    )
    return successor


def test_a_suspended_successor_given_up_stops_gracefully_and_the_upgrade_can_be_retried(
    app: App,
) -> None:
    """Continued after its SIGTERM: it stops on its own, and a retried upgrade runs."""
    old = app.start("--shutdown-timeout", _SHUTDOWN_TIMEOUT)
    successor = _suspended_successor_given_up(app)
    [stopped] = wait_for(lambda: app.records("upgrade successor stopped"), 30, "its stop")
    assert stopped["successor"] == successor
    wait_gone(successor)
    assert app.records("upgrade successor killed") == []
    app.edit('MODE = "hang"', 'MODE = ""')
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    retried = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert retried.returncode == 0, retried.stderr
    new = int(retried.stdout)
    assert app.pid() == new != old
    assert app.get() == f"v2 {new}"


def test_a_stop_of_the_old_daemon_does_not_wait_for_a_suspended_successor(app: App) -> None:
    """The old daemon's stop ends with the successor's graceful stop, not its SIGKILL."""
    old = app.start("--shutdown-timeout", _SHUTDOWN_TIMEOUT)
    successor = _suspended_successor_given_up(app)
    stopped = cli("stop", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == f"aiodaemon: stopped (pid {old})\n"
    assert not is_alive(successor)
    [gone] = app.records("upgrade successor stopped")
    assert gone["successor"] == successor
    assert app.records("upgrade successor killed") == []
    assert not app.pidfile.exists()


def test_an_upgrade_by_signal_continues_the_suspended_new_process_it_gives_up_on(
    app: App,
) -> None:
    """--no-control: the command's own SIGTERM at --timeout is followed by SIGCONT, not SIGKILL."""
    old = app.start("--no-control")
    new, code, stderr = _upgrade_stopping_its_new_process(app)
    assert code == 1
    assert f"the new process (pid {new}) was not ready after 3 s: sent it SIGTERM;" in stderr
    app.assert_given_up_gracefully(new, old)
