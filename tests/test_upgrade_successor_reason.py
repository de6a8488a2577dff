"""The old daemon's ``upgrade successor stopped`` record says why the new process ended.

It gave the new process's exit status alone; the reason was only in the new
process's own ``exit`` record, which an operator reading the old daemon's
records (or another log) did not see beside it.
"""

from __future__ import annotations

import os
import signal

from .support import kill_quietly, proc_state, wait_for, wait_gone
from .test_upgrade import App, cli, upgrade_in_background
from .test_upgrade_faults import _successor_starting, app

__all__ = ["app"]  # the fixture, shared with test_upgrade_faults


def _stopped_and_its_exit(app: App, successor: int) -> tuple[dict[str, object], dict[str, object]]:
    [stopped] = wait_for(lambda: app.records("upgrade successor stopped"), 30, "its stop")
    wait_gone(successor)
    [end] = [r for r in app.records("exit") if r["pid"] == successor]
    return stopped, end


def test_a_successor_not_ready_in_time_is_said_stopped_with_its_reason(app: App) -> None:
    """Not ready within --timeout: the old daemon's record carries the new one's exit reason."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgraded = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "3")
    assert upgraded.returncode == 1
    successor = int(upgraded.stderr.split("(pid ", 1)[1].split(")", 1)[0])
    stopped, end = _stopped_and_its_exit(app, successor)
    assert stopped["pid"] == old
    assert (stopped["successor"], stopped["status"]) == (successor, 1)
    assert end["reason"] == "stopped by SIGTERM before it was ready"
    assert stopped["reason"] == end["reason"]


def test_a_successor_abandoned_at_a_stop_is_said_stopped_with_its_reason(app: App) -> None:
    """A stop during the upgrade: the same, for the successor it sends SIGTERM."""
    app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = upgrade_in_background(app)
    try:
        successor = _successor_starting(app)
        assert cli("stop", "--pidfile", str(app.pidfile)).returncode == 0
    finally:
        upgrade.communicate(timeout=60)
    stopped, end = _stopped_and_its_exit(app, successor)
    assert stopped["status"] == 1
    assert isinstance(end["reason"], str)
    assert end["reason"].startswith("stopped by SIGTERM before it was ready")
    assert stopped["reason"] == end["reason"]


def test_a_successor_that_ended_as_we_stop_is_said_stopped_with_its_reason(app: App) -> None:
    """Its end and our stop seen at once: the record still carries its reason, not null."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = upgrade_in_background(app)
    try:
        successor = _successor_starting(app)
        # The old daemon held while the successor stops (a SIGTERM of its own)
        # and says why on the channel: the old one then meets its line, its
        # exit and its own SIGTERM in one turn of its loop. The wait that read
        # the line, ended by the stop, dropped it.
        os.kill(old, signal.SIGSTOP)
        wait_for(lambda: proc_state(old) == "T", what="the old daemon to stop")
        os.kill(successor, signal.SIGTERM)
        wait_gone(successor, 30)
        os.kill(old, signal.SIGTERM)
    finally:
        kill_quietly(old, signal.SIGCONT)
        upgrade.communicate(timeout=60)
    stopped, end = _stopped_and_its_exit(app, successor)
    assert stopped["pid"] == old
    assert (stopped["successor"], stopped["status"]) == (successor, 1)
    assert end["reason"] == "stopped by SIGTERM before it was ready"
    assert stopped["reason"] == end["reason"]
