"""listen= and health unix sockets whose path does not fit in sun_path, served all the same."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .support import aiodaemon_cli, install_program, read_pid, wait_gone


def request(path: Path, target: str) -> bytes:
    """One HTTP request to the unix socket at ``path`` (reached through its directory's fd)."""
    dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(f"/proc/self/fd/{dirfd}/{path.name}")
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks)
    finally:
        os.close(dirfd)


def test_listen_and_health_sockets_past_sun_path_serve_and_upgrade(tmp_path: Path) -> None:
    """Long unix: listen and health paths: bound, shown by status as given, upgraded, removed."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    served, health = deep / "s.sock", deep / "h.sock"
    assert len(bytes(served)) > 107
    install_program("upgrade_app", tmp_path)
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "app.jsonl",
        "--listen", f"http=unix:{served}", "--health", f"unix:{health}", cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert f" {pid}".encode() in request(served, "/")
        assert request(health, "/readyz").startswith(b"HTTP/1.1 200 ")
        expected = {"http": f"unix:{served}", "health": f"unix:{health}"}
        status = aiodaemon_cli("status", "--json", "--pidfile", pidfile)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["sockets"] == expected
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile)
        assert upgraded.returncode == 0, upgraded.stderr
        new_pid = int(upgraded.stdout)
        wait_gone(pid)
        assert f" {new_pid}".encode() in request(served, "/")
        assert request(health, "/readyz").startswith(b"HTTP/1.1 200 ")
        status = aiodaemon_cli("status", "--json", "--pidfile", pidfile)
        assert json.loads(status.stdout)["sockets"] == expected
        plain = aiodaemon_cli("status", "--pidfile", pidfile)
        assert f"listening http: unix:{served}\n" in plain.stdout
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert not served.exists()
    assert not health.exists()


def test_a_listen_socket_name_too_long_for_any_path_is_one_line_with_its_limit(
    tmp_path: Path,
) -> None:
    """A 95-byte socket file name: exit 2, the whole path, its length and the limit."""
    install_program("forever", tmp_path)
    name = "x" * 95
    for flag, value in (
        ("--listen", f"s=unix:{tmp_path}/{name}"),
        ("--health", f"unix:{tmp_path}/{name}"),
    ):
        result = aiodaemon_cli(
            "start", "app:main", "--pidfile", tmp_path / "a.pid", flag, value, cwd=tmp_path
        )
        assert result.returncode == 2, result.stderr
        label = "--listen s" if flag == "--listen" else "--health"
        assert result.stderr.startswith(
            f"aiodaemon: {label}: {tmp_path}/{name} has a file name too long"
        )
        assert "for a unix socket (95 bytes, at most " in result.stderr
        assert result.stderr.count("\n") == 1
        assert not (tmp_path / "a.pid").exists()
