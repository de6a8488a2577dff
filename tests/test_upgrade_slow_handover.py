"""Commands during a slow hand-over: the new process wrote its pid, its parent still serves.

An upgrade's new process writes its pid into the pidfile, then serves the
control socket: until it does, the old daemon (its parent) answers there. The
old daemon gives it 10 s for that step (a descheduled or stopped process, an
``fsync`` of the pidfile on a busy disk) before it kills it and takes the
pidfile back. The commands gave that moment 2 s: past them they took the old
daemon for an impostor ("not trusted"), and ``reload`` sent its SIGHUP to a
process about to be killed, ``stop`` stopped the new process and rolled the
upgrade back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .support import AIODAEMON, REPO, clean_env, wait_for, wait_gone
from .test_upgrade import App, upgrade_in_background
from .test_upgrade_faults import _end_what_is_left
from .test_upgrade_faults import app as app

#: tests/programs/paused: holds the new process once its pid is in the pidfile.
PAUSED = REPO / "tests" / "programs" / "paused"
#: How long the new process is held: longer than the 2 s the commands gave it.
HELD = 3.0


def _command(app: App, *args: str) -> subprocess.Popen[str]:
    """``aiodaemon ARGS --pidfile P`` in the background."""
    return subprocess.Popen(
        [str(AIODAEMON), *args, "--pidfile", str(app.pidfile)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_held(app: App, held: Path) -> int:
    """Start the daemon so that its upgrade's new process is held at its take-over."""
    held.mkdir()
    pythonpath = os.pathsep.join([str(PAUSED), str(REPO)])
    return app.start(
        PYTHONPATH=pythonpath, AIODAEMON_TEST_PAUSE=str(held), AIODAEMON_TEST_PAUSE_AT="takeover"
    )


def _finish(command: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = command.communicate(timeout=60)
    return command.returncode, out, err


class _HandOver:
    """An upgrade in the background whose new process is held once its pid is written."""

    def __init__(self, app: App, held: Path, old: int, upgrade: subprocess.Popen[str]) -> None:
        self.held, self.old, self.upgrade = held, old, upgrade
        #: the new process, whose pid is in the pidfile.
        self.successor = app.pid()
        #: commands run meanwhile (see :meth:`command`).
        self.commands: list[subprocess.Popen[str]] = []

    def command(self, app: App, *args: str) -> subprocess.Popen[str]:
        """Run ``aiodaemon ARGS`` meanwhile (killed if the test fails)."""
        self.commands.append(_command(app, *args))
        return self.commands[-1]

    def go_on(self) -> None:
        """Let the new process go on (its take-over)."""
        (self.held / "go").touch()


@contextlib.contextmanager
def _held_hand_over(app: App, tmp_path: Path) -> Iterator[_HandOver]:
    """Start the daemon, upgrade it, and hold its new process once its pid is in the pidfile.

    On a failure the new process goes on, and nothing started outlives the test.
    """
    held = tmp_path / "held"
    old = _start_held(app, held)
    upgrade = upgrade_in_background(app)
    hand_over = None
    try:
        wait_for((held / "paused").exists, 30, "the new process to write its pid")
        hand_over = _HandOver(app, held, old, upgrade)
        yield hand_over
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, None if hand_over is None else hand_over.successor)
        for command in [] if hand_over is None else hand_over.commands:
            if command.poll() is None:
                command.kill()
                command.communicate()
        raise


def test_status_and_reload_wait_for_a_slow_hand_over(app: App, tmp_path: Path) -> None:
    """Held 3 s after writing its pid: ``status`` and ``reload`` answer from the new daemon."""
    with _held_hand_over(app, tmp_path) as hand_over:
        successor = hand_over.successor
        assert successor != hand_over.old
        commands = [hand_over.command(app, "status"), hand_over.command(app, "reload")]
        # The fault: the new process does not go on for a while (SIGSTOP, a slow fsync).
        time.sleep(HELD)
        hand_over.go_on()
        assert _finish(hand_over.upgrade) == (0, f"{successor}\n", "")
        status, reload = map(_finish, commands)
    assert status[0] == 0, status
    # The reload asked at the same time may be running when status is answered.
    state, _, rest = status[1].partition(" ")
    assert state in ("running", "reloading"), status
    assert rest.startswith(f"(pid {successor}, pidfile {app.pidfile})\n"), status
    assert status[2] == ""
    # Asked before the old daemon let its control socket go (a loaded machine), the
    # reload is refused for now there and asked again: the successor runs it all the same.
    asked_again = (
        f"aiodaemon: an upgrade to successor pid {successor} is in progress (pid {successor});"
        " trying again for up to 60 s\n"
    )
    said = reload[2].removeprefix(asked_again)
    assert (reload[0], reload[1], said) == (
        0,
        "",
        f"aiodaemon: reloaded (pid {successor}; no reload hooks; log files reopened)\n",
    )
    assert [r["pid"] for r in app.records("reload finished")] == [successor]


def test_stop_during_a_slow_hand_over_leaves_the_upgrade_done(app: App, tmp_path: Path) -> None:
    """``stop`` meanwhile: no "not trusted", no SIGTERM rolling the upgrade back; both end."""
    with _held_hand_over(app, tmp_path) as hand_over:
        old, successor = hand_over.old, hand_over.successor
        stop = hand_over.command(app, "stop")
        time.sleep(HELD)
        hand_over.go_on()
        upgraded = _finish(hand_over.upgrade)
        stopped = _finish(stop)
    assert upgraded == (0, f"{successor}\n", "")
    assert stopped == (0, "", f"aiodaemon: stopped (pid {successor})\n")
    wait_gone(successor)
    wait_gone(old)
    assert not app.pidfile.exists()


def test_reload_during_a_hand_over_that_rolls_back_reloads_the_old_daemon(
    app: App, tmp_path: Path
) -> None:
    """Held past the old daemon's 10 s: it is killed, and the waiting ``reload`` reloads the
    old daemon, which serves on (not a SIGHUP to the process being killed, exit 0)."""
    with _held_hand_over(app, tmp_path) as hand_over:
        old, successor = hand_over.old, hand_over.successor
        reload = hand_over.command(app, "reload")
        upgraded = _finish(hand_over.upgrade)
        reloaded = _finish(reload)
    assert upgraded == (
        1,
        "",
        f"aiodaemon: upgrade failed: successor (pid {successor}) did not take over within 10 s\n",
    )
    assert reloaded == (
        0,
        "",
        f"aiodaemon: reloaded (pid {old}; no reload hooks; log files reopened)\n",
    )
    assert [r["pid"] for r in app.records("reload finished")] == [old]
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
