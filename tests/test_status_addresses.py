"""``status`` tells a dual-stack wildcard socket from an IPv6-only one.

Both are bound to ``::``; ``":8080"`` (``listen=``'s form for every IPv4 and
IPv6 address) takes IPv4 clients too, ``"[::]:8080"`` (``IPV6_V6ONLY``) does
not. Both used to be shown as ``[::]:P``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from .support import aiodaemon_cli, install_program, read_pid, wait_gone


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_status_shows_dual_stack_as_colon_port_and_ipv6_only_in_brackets(tmp_path: Path) -> None:
    """``:P`` for the dual-stack socket, ``[::]:P`` for the IPv6-only one, plain and --json."""
    install_program("upgrade_app", tmp_path)
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "app.jsonl",
        "--listen", "http=:0", "--listen", "six=[::]:0", "--listen", "four=0.0.0.0:0",
        "--health", ":0", cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        status = aiodaemon_cli("status", "--json", "--pidfile", pidfile)
        assert status.returncode == 0, status.stderr
        sockets = json.loads(status.stdout)["sockets"]
        both, six, four, health = (_port(sockets[n]) for n in ("http", "six", "four", "health"))
        assert sockets == {
            "http": f":{both}",
            "six": f"[::]:{six}",
            "four": f"0.0.0.0:{four}",
            "health": f":{health}",
        }
        # What each form says is what clients find: IPv4 reaches the dual-stack one only.
        socket.create_connection(("127.0.0.1", both), timeout=5).close()
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", six))
        plain = aiodaemon_cli("status", "--pidfile", pidfile)
        assert plain.returncode == 0, plain.stderr
        assert f"listening http: :{both}\n" in plain.stdout
        assert f"listening six: [::]:{six}\n" in plain.stdout
        assert f"listening four: 0.0.0.0:{four}\n" in plain.stdout
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile)
        wait_gone(pid)
