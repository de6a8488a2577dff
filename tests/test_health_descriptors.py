"""The health endpoint's connection cap under a low RLIMIT_NOFILE: the service keeps serving."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    free_port,
    install_program,
    read_pid,
    wait_gone,
)

#: Rounds of the flood: each tops the idle connections up again.
ROUNDS = 60
IDLE = 40


def _nofile_32() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))


def _flood(port: int, held: list[socket.socket]) -> None:
    """Top the idle health connections up to IDLE, dropping those the daemon closed."""
    readable, _, _ = select.select(held, [], [], 0.05) if held else ([], [], [])
    for client in readable:
        held.remove(client)
        client.close()
    while len(held) < IDLE:
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break


def test_idle_health_clients_leave_descriptors_for_the_service(tmp_path: Path) -> None:
    """At RLIMIT_NOFILE 32, 40 idle health connections kept open: the daemon never runs out."""
    install_program("upgrade_app", tmp_path)
    pidfile, port, health = tmp_path / "app.pid", free_port(), free_port()
    started = subprocess.run(
        [AIODAEMON, "start", "app:main", "--pidfile", pidfile, "--log-file",
         tmp_path / "app.jsonl", "--listen", f"http=127.0.0.1:{port}",
         "--health", f"127.0.0.1:{health}"],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(),
        stdin=subprocess.DEVNULL, timeout=45, preexec_fn=_nofile_32, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    held: list[socket.socket] = []
    try:
        most = 0
        for _ in range(ROUNDS):
            _flood(health, held)
            most = max(most, len(os.listdir(f"/proc/{pid}/fd")))
        # Idle health clients are evicted past the cap (4 at 32 descriptors).
        assert most < 32, f"the daemon reached {most} of its 32 descriptors"
        _flood(health, held)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as http:
            http.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert f" {pid}".encode() in http.recv(4096)
        with socket.create_connection(("127.0.0.1", health), timeout=10) as probe:
            probe.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
            assert probe.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for client in held:
            with contextlib.suppress(OSError):
                client.close()
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)
