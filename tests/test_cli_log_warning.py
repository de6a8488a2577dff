"""``aiodaemon start`` warns when the detached daemon's records would go nowhere."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import PROGRAMS, aiodaemon_cli, is_alive, read_json_lines, wait_for

WARNING = (
    "aiodaemon: warning: started without --log-file, --syslog or --stderr, "
    "so the daemon's log (even the error that may end it) goes nowhere\n"
)


def start(pidfile: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """``aiodaemon start forever:main --pidfile P EXTRA`` from tests/programs."""
    return aiodaemon_cli("start", "forever:main", "--pidfile", pidfile, *extra, cwd=PROGRAMS)


def stop(pidfile: Path) -> None:
    """Stop the daemon holding ``pidfile``; it must stop cleanly."""
    result = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix datagram socket standing in for /dev/log."""
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield path


def test_start_without_a_log_target_warns_and_still_starts(tmp_path: Path) -> None:
    """No --log-file, --syslog or --stderr: one warning line on stderr, the daemon runs."""
    pidfile = tmp_path / "d.pid"
    result = start(pidfile)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout)
    try:
        assert result.stderr == WARNING
        assert is_alive(pid)
    finally:
        stop(pidfile)


def test_stdout_alone_is_not_a_log_target(tmp_path: Path) -> None:
    """--stdout catches what the program prints, not its records: start still warns."""
    pidfile = tmp_path / "d.pid"
    result = start(pidfile, "--stdout", tmp_path / "out.txt")
    assert result.returncode == 0, result.stderr
    try:
        assert result.stderr == WARNING
    finally:
        stop(pidfile)


@pytest.mark.parametrize("target", ["--log-file", "--stderr", "--syslog"])
def test_start_with_a_log_target_does_not_warn(
    target: str, tmp_path: Path, syslog_socket: Path
) -> None:
    """Any of --log-file, --stderr or --syslog: the pid on stdout, nothing on stderr."""
    pidfile = tmp_path / "d.pid"
    where = syslog_socket if target == "--syslog" else tmp_path / "log.txt"
    result = start(pidfile, f"{target}={where}")
    assert result.returncode == 0, result.stderr
    try:
        assert result.stderr == ""
        assert int(result.stdout) > 1
    finally:
        stop(pidfile)
    if target != "--syslog":
        # The records did go there: the exit record is the last one.
        wait_for(lambda: any(r["event"] == "exit" for r in read_json_lines(where)), what="exit")
