"""``status`` of a stopping daemon whose listener is closed still names its address."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from .support import aiodaemon_cli, program, python, wait_for, wait_gone


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
