"""``status`` asked while a stopping daemon's loop is held up late in its shutdown says "stopping".

The control socket answers until the very end (DESIGN.md section 3): requests
queued while the loop was held, up to the step that closes the socket, got no
answer, and ``status`` fell back to the pidfile, which said "running".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, clean_env, program, python, require_tool, wait_for, wait_gone

#: Status commands queued on the control socket while the loop is held.
CLIENTS = 4


def _queued(control: Path) -> int:
    """Connections waiting in the control socket's listen backlog (``ss`` Recv-Q)."""
    out = subprocess.run(
        [require_tool("ss"), "-Hxl", "src", str(control)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[2]) if len(out) > 2 else 0


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio-loop"])
@pytest.mark.parametrize("step", ["hook", "cancel"])
def test_status_queued_during_a_late_shutdown_step_is_told_stopping(
    tmp_path: Path, step: str, uvloop: bool | None
) -> None:
    """Every `status --json` queued while the loop is held answers "stopping", exit 0."""
    pidfile = tmp_path / "d.pid"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "log"),
        "uvloop": uvloop,
    }
    started = python([program("stalled_shutdown_step"), json.dumps(options), tmp_path, step])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    clients: list[subprocess.Popen[str]] = []
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for((tmp_path / "stalled").exists, what="the loop held up")
        for _ in range(CLIENTS):
            argv = [str(AIODAEMON), "status", "--pidfile", str(pidfile), "--json"]
            pipe = subprocess.PIPE
            clients.append(
                subprocess.Popen(
                    argv,
                    stdout=pipe,
                    stderr=pipe,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=clean_env(),
                )
            )
        control = Path(f"{pidfile}.ctl")
        wait_for(lambda: _queued(control) >= CLIENTS, 30, "the status requests queued")
        (tmp_path / "release").touch()
        for client in clients:
            out, err = client.communicate(timeout=30)
            assert (client.returncode, err) == (0, "")
            answer = json.loads(out)
            assert (answer["state"], answer["pid"]) == ("stopping", pid)
    finally:
        (tmp_path / "release").touch()
        for client in clients:
            if client.poll() is None:
                client.kill()
            client.communicate()
        wait_gone(pid)
