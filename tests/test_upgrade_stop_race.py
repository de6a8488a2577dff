"""Commands racing an upgrade's hand-over, or a restart: they act on whoever serves after it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, REPO, clean_env, wait_for, wait_gone
from .test_upgrade import App, cli, upgrade_in_background
from .test_upgrade_faults import _end_what_is_left, _successor_starting
from .test_upgrade_faults import app as app

#: tests/programs/paused: pauses a command where $AIODAEMON_TEST_PAUSE_AT says.
PAUSED = REPO / "tests" / "programs" / "paused"


def _paused_command(
    app: App, pause: Path, *args: str, at: str = "control"
) -> subprocess.Popen[str]:
    """``aiodaemon ARGS --pidfile P``, paused before its request (``at``: see ``PAUSED``)."""
    pause.mkdir()
    pythonpath = os.pathsep.join([str(PAUSED), str(REPO)])
    paused = {"AIODAEMON_TEST_PAUSE": str(pause), "AIODAEMON_TEST_PAUSE_AT": at}
    return subprocess.Popen(
        [str(AIODAEMON), *args, "--pidfile", str(app.pidfile)],
        env=clean_env({"PYTHONPATH": pythonpath, **paused}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _hand_over_while_paused(
    app: App, pause: Path, *args: str, at: str = "control"
) -> tuple[int, int, str, str]:
    """Start an upgrade; run ``aiodaemon ARGS`` once the new process starts, paused after its
    look at the pidfile until the hand-over is done. (old pid, new pid, its stdout, stderr)."""
    gate = app.directory / "gate"
    old = app.start(APP_GATE=str(gate))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade = upgrade_in_background(app)
    successor = None
    command = None
    try:
        successor = _successor_starting(app)
        wait_for((app.directory / "gate.entered").exists, 30, "the startup hook")
        command = _paused_command(app, pause, *args, at=at)
        wait_for((pause / "paused").exists, 30, "the command to look at the pidfile")
        gate.touch()
        out, err = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 0, err
        assert out == f"{successor}\n"
        # A deploy after the first upgrade read its code: the command's own would run it.
        app.edit('VERSION = "v1"', 'VERSION = "v2"')
        app.edit('MODE = "gate"', 'MODE = ""')
        (pause / "go").touch()
        said, said_err = command.communicate(timeout=60)
    except BaseException:
        _end_what_is_left(upgrade, successor)
        if command is not None and command.poll() is None:
            command.kill()
            command.communicate()
        raise
    assert command.returncode == 0, said_err
    return old, successor, said, said_err


def test_stop_that_read_the_old_pid_before_the_hand_over_stops_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """``stop`` saw the old pid, the hand-over came before its request: nothing runs after."""
    old, successor, _, said = _hand_over_while_paused(app, tmp_path / "pause", "stop")
    assert said == (
        f"aiodaemon: pid {old} handed over to pid {successor} (an upgrade) meanwhile; stopping it\n"
        f"aiodaemon: stopped (pid {successor})\n"
    )
    wait_gone(successor)
    wait_gone(old)
    assert not app.pidfile.exists()
    assert cli("status", "--pidfile", str(app.pidfile)).returncode == 3


def test_stop_that_verified_the_old_pid_before_the_hand_over_stops_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """``stop`` verified the old pid, the hand-over came before it read the lock's taker."""
    pause = tmp_path / "pause"
    old, successor, _, said = _hand_over_while_paused(app, pause, "stop", at="locks")
    # Whether it follows the hand-over or meets the new process first, it stops
    # the new process: it said "stopped (pid OLD)", exit 0, and the new one served on.
    assert said.endswith(f"aiodaemon: stopped (pid {successor})\n"), said
    wait_gone(successor)
    wait_gone(old)
    assert not app.pidfile.exists()
    assert cli("status", "--pidfile", str(app.pidfile)).returncode == 3


def test_upgrade_that_read_the_old_pid_before_another_hand_over_upgrades_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """A second ``upgrade`` racing the first one's hand-over replaces its new process in turn."""
    old, successor, out, said = _hand_over_while_paused(app, tmp_path / "pause", "upgrade")
    assert (
        said
        == f"aiodaemon: pid {old} was upgraded to pid {successor} meanwhile; upgrading that one\n"
    )
    third = int(out)
    assert third not in (old, successor)
    wait_gone(successor)
    assert app.pid() == third
    assert app.get() == f"v2 {third}"


def test_reload_that_read_the_old_pid_before_the_hand_over_reloads_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """``reload`` racing the hand-over reloads the new process, and reports its result."""
    _, successor, _, said = _hand_over_while_paused(app, tmp_path / "pause", "reload")
    assert said == f"aiodaemon: reloaded (pid {successor}; no reload hooks; log files reopened)\n"
    [reloaded] = wait_for(lambda: app.records("reload finished"), 10, "the reload")
    assert reloaded["pid"] == successor


def test_reload_that_verified_the_old_pid_before_the_hand_over_reloads_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """``reload`` paused between its pidfd on the old pid and the lock's check: the new one.

    The check found the pidfile naming the new process, and the command said
    "not running (pid OLD exited before it was signalled)", exit 7, of a
    daemon that ran on (3 in ~2,000 reloads racing upgrades).
    """
    pause = tmp_path / "pause"
    at = f"open:{app.pidfile.name}:3"
    _, successor, _, said = _hand_over_while_paused(app, pause, "reload", at=at)
    assert said == f"aiodaemon: reloaded (pid {successor}; no reload hooks; log files reopened)\n"
    [reloaded] = wait_for(lambda: app.records("reload finished"), 10, "the reload")
    assert reloaded["pid"] == successor


def _replaced_while_paused(app: App, pause: Path, *start: str) -> tuple[int, int, str, str, int]:
    """Run ``aiodaemon upgrade``, paused after its look at the pidfile while its daemon is
    stopped and a fresh one started (``start``: its extra options); the old pid, the
    fresh one, the upgrade's stdout and stderr, and its exit status."""
    old = app.start()
    command = _paused_command(app, pause, "upgrade")
    fresh = None
    try:
        wait_for((pause / "paused").exists, 30, "the upgrade to look at the pidfile")
        stopped = cli("stop", "--pidfile", str(app.pidfile))
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(old)
        fresh = app.start(*start)
        (pause / "go").touch()
        out, err = command.communicate(timeout=60)
    except BaseException:
        if command.poll() is None:
            command.kill()
            command.communicate()
        _end_what_is_left(None, fresh)
        raise
    return old, fresh, out, err, command.returncode


@pytest.mark.parametrize("start", [(), ("--no-control",)], ids=["control", "no-control"])
def test_upgrade_whose_daemon_was_replaced_by_a_fresh_start_says_so(
    app: App, tmp_path: Path, start: tuple[str, ...]
) -> None:
    """Not "upgraded meanwhile": the daemon it looked at stopped, the fresh one is upgraded.

    A fresh daemon without a control socket the same, by SIGUSR2 (not "no handler").
    """
    old, fresh, out, err, code = _replaced_while_paused(app, tmp_path / "pause", *start)
    assert (code, err) == (
        0,
        f"aiodaemon: pid {old} exited meanwhile and pid {fresh} was started since; "
        "upgrading that one\n",
    )
    new = int(out)
    assert new not in (old, fresh)
    wait_gone(fresh)
    assert app.pid() == new


@pytest.mark.parametrize("start", [(), ("--no-control",)], ids=["control", "no-control"])
def test_upgrade_whose_daemon_died_before_a_fresh_start_names_no_successor(
    app: App, start: tuple[str, ...]
) -> None:
    """The daemon and its new process killed mid-upgrade, another started afresh: exit 1,
    the fresh daemon named as such, not as the upgrade's successor (nor printed as upgraded).

    The command is held (SIGSTOP) from the kill until the fresh daemon holds the pidfile.
    """
    old = app.start(*start, APP_GATE=str(app.directory / "gate"))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade = upgrade_in_background(app)
    successor = fresh = None
    try:
        successor = _successor_starting(app)
        upgrade.send_signal(signal.SIGSTOP)
        os.kill(old, signal.SIGKILL)
        os.kill(successor, signal.SIGKILL)
        wait_gone(old)
        wait_gone(successor)
        app.edit('MODE = "gate"', 'MODE = ""')
        fresh = app.start(*start)
        upgrade.send_signal(signal.SIGCONT)
        out, err = upgrade.communicate(timeout=60)
    except BaseException:
        if upgrade.poll() is None:
            upgrade.send_signal(signal.SIGCONT)
        _end_what_is_left(upgrade, fresh)
        raise
    assert (upgrade.returncode, out) == (1, "")
    assert err == (
        f"aiodaemon: pid {old} exited during the upgrade, before it handed over; "
        f"no successor took over: pid {fresh} was started afresh since, not upgraded\n"
    )
    assert app.pid() == fresh


def test_stop_of_a_new_process_not_yet_serving_its_socket_waits_for_it(
    app: App, tmp_path: Path
) -> None:
    """``stop`` meets the new process in the pidfile, its parent still on the control socket:
    no "not trusted" warning nor SIGTERM (which rolled the upgrade back); it stops the new one.

    The new process is held after writing its pid; ``stop`` is held before it asks again.
    """
    held = tmp_path / "held"
    held.mkdir()
    pythonpath = os.pathsep.join([str(PAUSED), str(REPO)])
    taking_over = {"AIODAEMON_TEST_PAUSE": str(held), "AIODAEMON_TEST_PAUSE_AT": "takeover"}
    old = app.start(PYTHONPATH=pythonpath, **taking_over)
    upgrade = upgrade_in_background(app)
    successor = None
    stop = None
    try:
        wait_for((held / "paused").exists, 30, "the new process to write its pid")
        successor = app.pid()
        assert successor != old
        pause = tmp_path / "pause"
        stop = _paused_command(app, pause, "stop", at="control-again")
        wait_for(lambda: (pause / "paused").exists() or stop.poll() is not None, 30, "the stop")
        (held / "go").touch()
        out, err = upgrade.communicate(timeout=60)
        assert (upgrade.returncode, out) == (0, f"{successor}\n"), err
        (pause / "go").touch()
        _, said = stop.communicate(timeout=60)
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, successor)
        if stop is not None and stop.poll() is None:
            stop.kill()
            stop.communicate()
        raise
    assert (stop.returncode, said) == (0, f"aiodaemon: stopped (pid {successor})\n")
    wait_gone(successor)
    wait_gone(old)
    assert not app.pidfile.exists()


def test_stop_while_a_refusing_new_process_still_serves_the_socket_waits_for_the_rollback(
    app: App, tmp_path: Path
) -> None:
    """``stop`` meets the old daemon in the pidfile, its new process still on the control
    socket (it took over, began to stop and gave the pidfile back): no "not trusted"
    warning nor SIGTERM; once the old daemon rolled back, it stops it.

    The new process is held once it gave the pidfile back; ``stop`` is held before it asks
    again. Without uvloop: there its take-over lets ``main`` run once it serves the socket.
    """
    held = tmp_path / "held"
    held.mkdir()
    pythonpath = os.pathsep.join([str(PAUSED), str(REPO)])
    giving_back = {"AIODAEMON_TEST_PAUSE": str(held), "AIODAEMON_TEST_PAUSE_AT": "giveback"}
    old = app.start("--no-uvloop", PYTHONPATH=pythonpath, **giving_back)
    app.edit('MODE = ""', 'MODE = "main-raise-serving"')
    upgrade = upgrade_in_background(app)
    stop = None
    try:
        wait_for((held / "paused").exists, 30, "the new process to give the pidfile back")
        assert app.pid() == old
        pause = tmp_path / "pause"
        stop = _paused_command(app, pause, "stop", at="control-again")
        wait_for(lambda: (pause / "paused").exists() or stop.poll() is not None, 30, "the stop")
        (held / "go").touch()
        _, err = upgrade.communicate(timeout=60)
        (pause / "go").touch()
        _, said = stop.communicate(timeout=60)
    except BaseException:
        (held / "go").touch()
        _end_what_is_left(upgrade, None)
        if stop is not None and stop.poll() is None:
            stop.kill()
            stop.communicate()
        raise
    assert (stop.returncode, said) == (0, f"aiodaemon: stopped (pid {old})\n")
    assert upgrade.returncode == 1
    assert "failed while taking over" in err
    wait_gone(old)
    assert not app.pidfile.exists()
