"""A forced exit (a second stop signal) removes the socket files the daemon owns, and only those."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from .support import has_line, kill_quietly, past_duplicate_window, spawn_program, wait_for


def _force_exit(
    tmp_path: Path, before_second: Callable[[dict[str, Path]], None] | None = None
) -> tuple[int, str, dict[str, Path]]:
    """Start the daemon with unix sockets, TERM it, (optionally act), TERM it again."""
    files = {
        "listener": tmp_path / "app.sock",
        "health": tmp_path / "health.sock",
        "control": tmp_path / "d.pid.ctl",
        "pidfile": tmp_path / "d.pid",
    }
    record = tmp_path / "record.txt"
    record.touch()
    options = {
        "detach": False,
        "pidfile": str(files["pidfile"]),
        "log_file": str(tmp_path / "log.jsonl"),
        "listen": {"app": f"unix:{files['listener']}"},
        "health": f"unix:{files['health']}",
    }
    proc = spawn_program("forced_exit_sockets", json.dumps(options), record)
    try:

        def recorded(line: str) -> bool:
            return has_line(record, line)

        wait_for(lambda: recorded("main running"), what="main running")
        assert all(path.exists() for path in files.values())
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: recorded("stopping"), what="the hanging shutdown hook")
        if before_second is not None:
            before_second(files)
        past_duplicate_window()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    return proc.returncode, err, files


def test_a_forced_exit_removes_the_unix_socket_files(tmp_path: Path) -> None:
    """Second SIGTERM: status 143, and the listener, health and control socket files are gone."""
    status, err, files = _force_exit(tmp_path)
    assert status == 128 + signal.SIGTERM, err
    assert [name for name, path in files.items() if path.exists()] == []


def test_a_forced_exit_leaves_a_socket_file_that_is_no_longer_its_own(tmp_path: Path) -> None:
    """A socket file replaced by someone else's at the same path survives the forced exit."""
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def replace_control(files: dict[str, Path]) -> None:
        files["control"].unlink()
        other.bind(str(files["control"]))

    try:
        status, err, files = _force_exit(tmp_path, replace_control)
        assert status == 128 + signal.SIGTERM, err
        assert files["control"].is_socket()
        assert not files["listener"].exists()
    finally:
        other.close()
