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

import os
import subprocess
import time
from pathlib import Path

from .support import AIODAEMON, REPO, clean_env, wait_for, wait_gone
from .test_upgrade import App
from .test_upgrade_faults import _end_what_is_left, _upgrade_in_background
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


def test_status_and_reload_wait_for_a_slow_hand_over(app: App, tmp_path: Path) -> None:
    """Held 3 s after writing its pid: ``status`` and ``reload`` answer from the new daemon."""
    held = tmp_path / "held"
    old = _start_held(app, held)
    upgrade = _upgrade_in_background(app)
    successor = None
    commands: list[subprocess.Popen[str]] = []
    try:
        wait_for((held / "paused").exists, 30, "the new process to write its pid")
        successor = app.pid()
        assert successor != old
        commands = [_command(app, "status"), _command(app, "reload")]
        # The fault: the new process does not go on for a while (SIGSTOP, a slow fsync).
        time.sleep(HELD)
        (held / "go").touch()
        assert _finish(upgrade) == (0, f"{successor}\n", "")
        status, reload = map(_finish, commands)
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, successor)
        for command in commands:
            if command.poll() is None:
                command.kill()
                command.communicate()
        raise
    assert status[0] == 0, status
    # The reload asked at the same time may be running when status is answered.
    state, _, rest = status[1].partition(" ")
    assert state in ("running", "reloading"), status
    assert rest.startswith(f"(pid {successor}, pidfile {app.pidfile})\n"), status
    assert status[2] == ""
    assert reload == (0, "", f"aiodaemon: reloaded (pid {successor})\n")
    assert [r["pid"] for r in app.records("reload finished")] == [successor]


def test_stop_during_a_slow_hand_over_leaves_the_upgrade_done(app: App, tmp_path: Path) -> None:
    """``stop`` meanwhile: no "not trusted", no SIGTERM rolling the upgrade back; both end."""
    held = tmp_path / "held"
    old = _start_held(app, held)
    upgrade = _upgrade_in_background(app)
    successor = None
    stop = None
    try:
        wait_for((held / "paused").exists, 30, "the new process to write its pid")
        successor = app.pid()
        stop = _command(app, "stop")
        time.sleep(HELD)
        (held / "go").touch()
        upgraded = _finish(upgrade)
        stopped = _finish(stop)
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, successor)
        if stop is not None and stop.poll() is None:
            stop.kill()
            stop.communicate()
        raise
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
    held = tmp_path / "held"
    old = _start_held(app, held)
    upgrade = _upgrade_in_background(app)
    successor = None
    reload = None
    try:
        wait_for((held / "paused").exists, 30, "the new process to write its pid")
        successor = app.pid()
        reload = _command(app, "reload")
        upgraded = _finish(upgrade)
        reloaded = _finish(reload)
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, successor)
        if reload is not None and reload.poll() is None:
            reload.kill()
            reload.communicate()
        raise
    assert upgraded == (
        1,
        "",
        f"aiodaemon: upgrade failed: successor (pid {successor}) did not take over within 10 s\n",
    )
    assert reloaded == (0, "", f"aiodaemon: reloaded (pid {old})\n")
    assert [r["pid"] for r in app.records("reload finished")] == [old]
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
