"""``status`` of a stopping daemon: its closed listener's address, and "stopping" to the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .control_support import Watched
from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    program,
    python,
    read_json_lines,
    wait_for,
    wait_gone,
)


def test_a_stopping_daemons_closed_listener_is_reported_by_its_address(tmp_path: Path) -> None:
    """`status --json` sockets stay "host:port" while stopping, as the plain form's addresses."""
    pidfile, release = tmp_path / "d.pid", tmp_path / "release"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "log"),
        "listen": {"http": "127.0.0.1:0"},
    }
    started = python([program("held_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        running = json.loads(aiodaemon_cli("status", "--pidfile", pidfile, "--json").stdout)
        address = running["sockets"]["http"]
        assert address.startswith("127.0.0.1:")
        os.kill(pid, signal.SIGTERM)

        def stopping() -> dict[str, object] | None:
            answer = json.loads(aiodaemon_cli("status", "--pidfile", pidfile, "--json").stdout)
            return answer if answer["state"] == "stopping" else None

        assert wait_for(stopping, what="the stopping state")["sockets"] == {"http": address}
        plain = aiodaemon_cli("status", "--pidfile", pidfile)
        assert plain.returncode == 0
        assert f"http: {address}" in plain.stdout
        assert "http: closed" not in plain.stdout
    finally:
        release.touch()
        wait_gone(pid)


def _draining(tmp_path: Path, control: bool) -> tuple[subprocess.Popen[bytes], Path]:
    """A foreground daemon of ``drain_at_stop`` (ready), and its pidfile."""
    pidfile = tmp_path / "d.pid"
    options = {"pidfile": str(pidfile), "control": None if control else False}
    daemon = subprocess.Popen(
        [PYTHON, program("drain_at_stop"), json.dumps(options)],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Read until ready, then no more: its shutdown's records fill the pipe.
        assert daemon.stderr is not None
        while b'"event":"ready"' not in daemon.stderr.readline():
            assert daemon.poll() is None, "the daemon ended before it was ready"
    except BaseException:
        daemon.kill()
        daemon.communicate()
        raise
    return daemon, pidfile


def _status_from_the_pidfile(pidfile: Path) -> dict[str, object] | None:
    """``status --json`` once it no longer comes from the control socket (no sockets)."""
    answer = json.loads(aiodaemon_cli("status", "--pidfile", pidfile, "--json").stdout)
    return answer if answer["sockets"] is None else None


@pytest.mark.parametrize("control", [True, False], ids=["control-closed", "no-control"])
def test_status_while_the_last_log_drain_waits_says_stopping(tmp_path: Path, control: bool) -> None:
    """Control socket closed (or none), the log writer's drain held: "stopping", exit 0.

    It said "running" from the pidfile, which the daemon still holds.
    """
    daemon, pidfile = _draining(tmp_path, control)
    try:
        daemon.send_signal(signal.SIGTERM)
        answer = wait_for(
            lambda: _status_from_the_pidfile(pidfile), 30, "the control socket closed"
        )
        assert (answer["state"], answer["pid"]) == ("stopping", daemon.pid)
        plain = aiodaemon_cli("status", "--pidfile", pidfile)
        assert plain.returncode == 0
        assert plain.stdout == f"stopping (pid {daemon.pid}, pidfile {pidfile})\n"
    finally:
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    assert b'"event":"exit"' in err
    assert aiodaemon_cli("status", "--pidfile", pidfile).returncode == 3


@pytest.mark.parametrize("control", [True, False], ids=["control-closed", "no-control"])
def test_stop_while_the_last_log_drain_waits_forces_nothing(tmp_path: Path, control: bool) -> None:
    """``stop`` then waits ("already stopping"): no SIGTERM cutting the drain (exit 143)."""
    daemon, pidfile = _draining(tmp_path, control)
    stop = None
    try:
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda: _status_from_the_pidfile(pidfile), 30, "the control socket closed")
        stop = Watched([str(AIODAEMON), "stop", "--pidfile", str(pidfile)], {})
        said = ("already stopping", "SIGTERM")
        wait_for(lambda: any(map(stop.said, said)) or stop.proc.poll() is not None, 30, "the stop")
        _, err = daemon.communicate(timeout=60)
        code, _, lines = stop.finish(30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
        if stop is not None:
            stop.kill()
    assert (code, lines) == (
        0,
        [
            f"aiodaemon: already stopping (pid {daemon.pid}); waiting",
            f"aiodaemon: stopped (pid {daemon.pid})",
        ],
    )
    assert daemon.returncode == 0
    assert b'"event":"exit"' in err


@pytest.mark.parametrize("command", ["reload", "upgrade"])
@pytest.mark.parametrize("control", [True, False], ids=["control-closed", "no-control"])
def test_reload_and_upgrade_while_the_last_log_drain_waits_say_it_is_stopping(
    tmp_path: Path, command: str, control: bool
) -> None:
    """Nothing sent, exit 1, "is stopping": it said "ignores SIGHUP" (or reload requested, 0)."""
    daemon, pidfile = _draining(tmp_path, control)
    try:
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda: _status_from_the_pidfile(pidfile), 30, "the control socket closed")
        result = aiodaemon_cli(command, "--pidfile", pidfile)
    finally:
        _, err = daemon.communicate(timeout=60)
    said = _stopping(command, daemon.pid)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", said)
    assert daemon.returncode == 0
    assert b'"event":"exit"' in err


@pytest.mark.parametrize("command", ["reload", "upgrade"])
def test_reload_and_upgrade_of_a_daemon_without_control_socket_in_its_shutdown_hooks(
    tmp_path: Path, command: str
) -> None:
    """Over signals alone, while a shutdown hook runs: "is stopping", exit 1.

    `reload` said "reload requested", exit 0, for a reload the stopping daemon never runs.
    """
    pidfile, release = tmp_path / "d.pid", tmp_path / "release"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "control": False,
        "log_file": str(tmp_path / "log"),
        "listen": {"http": "127.0.0.1:0"},
    }
    started = python([program("held_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(
            lambda: aiodaemon_cli("status", "--pidfile", pidfile).stdout.startswith("stopping"),
            what="the stopping state",
        )
        result = aiodaemon_cli(command, "--pidfile", pidfile)
    finally:
        release.touch()
        wait_gone(pid)
    assert (result.returncode, result.stderr) == (1, _stopping(command, pid))


def test_status_of_a_stopping_daemon_whose_loop_is_held_says_stopping(tmp_path: Path) -> None:
    """Its control socket unanswered (a shutdown hook's sync code): "stopping", exit 0.

    It said ``unknown (no answer from pid N within S s)``, exit 4, though the
    daemon's stopping mark said what it was doing.
    """
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("held_loop_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: b'"event":"loop held"' in log.read_bytes(), 30, "the hook to hold")
        plain = aiodaemon_cli("status", "--pidfile", pidfile, "--timeout", "1")
        assert (plain.returncode, plain.stdout, plain.stderr) == (
            0,
            f"stopping (pid {pid}, pidfile {pidfile})\n",
            f"aiodaemon: warning: no answer from pid {pid} within 1 s; status from the pidfile\n",
        )
        as_json = aiodaemon_cli("status", "--pidfile", pidfile, "--timeout", "1", "--json")
        assert as_json.returncode == 0
        answer = json.loads(as_json.stdout)
        assert (answer["state"], answer["pid"]) == ("stopping", pid)
    finally:
        release.touch()
        wait_gone(pid, 30)


def test_a_request_whose_peer_left_while_the_loop_was_held_logs_no_error(tmp_path: Path) -> None:
    """A `stop` that gave up on a held loop and left: its late answer fails, quietly.

    The daemon answered it once the hook let go, as the shutdown closed the
    connection: the write's BrokenPipeError was logged as an "unhandled
    exception in event loop" with a traceback, in a clean stop.
    """
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    # A main cancelled by the shutdown: the close then meets the failed answer.
    started = python([program("held_loop_shutdown"), json.dumps(options), release, "forever"])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: b'"event":"loop held"' in log.read_bytes(), 30, "the hook to hold")
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(f"{pidfile}.ctl")
            client.sendall(b'{"v": 1, "cmd": "stop"}\n')
    finally:
        release.touch()
        wait_gone(pid, 30)
    records = read_json_lines(log)
    assert [r for r in records if r["level"] in ("error", "critical")] == []
    assert (records[-1]["event"], records[-1]["status"]) == ("exit", 0)


def _stopping(command: str, pid: int) -> str:
    """What ``reload`` or ``upgrade`` says of a stopping daemon, whichever way it asked."""
    if command == "reload":
        return f"aiodaemon: pid {pid} is stopping; nothing reloaded\n"
    return f"aiodaemon: upgrade failed: pid {pid} is stopping; nothing started\n"
