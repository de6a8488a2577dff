"""upgrade and restart of a socket-activated daemon: real daemons on passed sockets."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    free_port,
    open_fds,
    program,
    read_json_lines,
    read_pid,
    wait_gone,
)


def _ask_tcp(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        return client.recv(100).decode().strip()


def _ask_unix(path: Path) -> str:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        return client.recv(100).decode().strip()


class Activated:
    """``aiodaemon start passed_fd_app:main`` under the activation launcher."""

    def __init__(self, tmp_path: Path) -> None:
        self.pidfile = tmp_path / "app.pid"
        self.passed_port = free_port()
        self.fallback_port = free_port()
        self.extra = tmp_path / "extra.sock"
        self.options = (
            "--pidfile", str(self.pidfile), "--log-file", str(tmp_path / "app.jsonl"),
            "--listen", f"http=127.0.0.1:{self.fallback_port}",
        )  # fmt: skip

    def start(self) -> subprocess.CompletedProcess[str]:
        sockets = f"http=127.0.0.1:{self.passed_port},extra=unix:{self.extra}"
        launcher = [PYTHON, str(program("activation_launcher")), sockets, "--"]
        return subprocess.run(
            [*launcher, str(AIODAEMON), "start", "passed_fd_app:main", *self.options],
            capture_output=True,
            text=True,
            cwd=program("passed_fd_app").parent,
            env=clean_env({"APP_PASSED_FD": "4"}),
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return aiodaemon_cli(*args, cwd=program("passed_fd_app").parent, env={"APP_PASSED_FD": "4"})


@pytest.fixture
def activated(tmp_path: Path) -> Iterator[Activated]:
    """A socket-activated daemon serving a passed fd by its number; stopped at the end."""
    daemon = Activated(tmp_path)
    started = daemon.start()
    assert started.returncode == 0, started.stderr
    yield daemon
    aiodaemon_cli("stop", "--pidfile", str(daemon.pidfile))


def test_upgrade_keeps_unclaimed_passed_fds_at_their_numbers(activated: Activated) -> None:
    """The new process finds the passed fd no listen= name claims at the number systemd gave."""
    old = read_pid(activated.pidfile)
    assert _ask_unix(activated.extra) == str(old)
    upgraded = activated.cli("upgrade", "--pidfile", str(activated.pidfile))
    assert upgraded.returncode == 0, upgraded.stderr
    new = int(upgraded.stdout.strip())
    assert new != old
    wait_gone(old, 30)
    assert _ask_unix(activated.extra) == str(new)
    assert _ask_tcp(activated.passed_port) == str(new)
    # Again from the new process: it hands the fd on as it got it.
    again = activated.cli("upgrade", "--pidfile", str(activated.pidfile))
    assert again.returncode == 0, again.stderr
    assert _ask_unix(activated.extra) == again.stdout.strip()


def test_restart_of_socket_activated_daemon_is_refused(activated: Activated) -> None:
    """restart says it cannot get systemd's sockets back, and stops nothing."""
    pid = read_pid(activated.pidfile)
    restarted = activated.cli("restart", "passed_fd_app:main", *activated.options)
    assert restarted.returncode == 1
    lines = restarted.stderr.strip().splitlines()
    assert len(lines) == 1, restarted.stderr
    assert "not restarted" in lines[0]
    assert "socket activation" in lines[0]
    assert "systemctl restart" in lines[0]
    assert "aiodaemon upgrade" in lines[0]
    assert read_pid(activated.pidfile) == pid
    assert _ask_tcp(activated.passed_port) == str(pid)
    with pytest.raises(ConnectionRefusedError):
        _ask_tcp(activated.fallback_port)


def test_restart_after_upgrade_of_socket_activated_daemon_is_refused(
    activated: Activated,
) -> None:
    """The new process of an upgrade still knows its sockets came from the service manager."""
    upgraded = activated.cli("upgrade", "--pidfile", str(activated.pidfile))
    assert upgraded.returncode == 0, upgraded.stderr
    new = int(upgraded.stdout.strip())
    restarted = activated.cli("restart", "passed_fd_app:main", *activated.options)
    assert restarted.returncode == 1, restarted.stderr
    assert "socket activation" in restarted.stderr
    assert _ask_tcp(activated.passed_port) == str(new)


def test_upgrade_does_not_hand_on_a_file_now_at_a_passed_fds_number(tmp_path: Path) -> None:
    """The program closed the unclaimed passed socket and a file took fd 4: not handed on."""
    pidfile, log, data = tmp_path / "app.pid", tmp_path / "app.jsonl", tmp_path / "data.txt"
    sockets = f"web=127.0.0.1:{free_port()},extra=127.0.0.1:{free_port()}"
    env = {"APP_PASSED_FD": "4", "APP_DATA_FILE": str(data)}
    started = subprocess.run(
        [PYTHON, str(program("activation_launcher")), sockets, "--", str(AIODAEMON), "start",
         "passed_fd_reused:main", "--pidfile", str(pidfile), "--log-file", str(log),
         "--listen", f"web=127.0.0.1:{free_port()}"],
        capture_output=True, text=True, cwd=program("passed_fd_reused").parent,
        env=clean_env(env), stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    try:
        assert os.readlink(f"/proc/{old}/fd/4") == str(data)
        upgraded = aiodaemon_cli(
            "upgrade", "--pidfile", str(pidfile), cwd=program("passed_fd_reused").parent, env=env
        )
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout.strip())
        wait_gone(old, 30)
        assert str(data) not in open_fds(new).values()
        skipped = [r for r in read_json_lines(log) if r.get("event") == "passed fd not handed on"]
        assert [(r["name"], r["fd"], r["reason"]) for r in skipped] == [
            ("extra", 4, "not a socket")
        ]
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile))
