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

from .control_support import Watched
from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    program,
    python,
    read_json_lines,
    require_tool,
    wait_for,
    wait_gone,
)

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


def test_status_while_the_executor_shuts_down_is_told_stopping(tmp_path: Path) -> None:
    """An executor call holding up the shutdown's end: `status` says "stopping", not "running"."""
    pidfile = tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    started = python([program("executor_at_stop"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        # main cancelled: the rest of the sequence waits for the executor's call.
        wait_for((tmp_path / "main-ended").exists, what="main to be cancelled")
        status = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
        assert (status.returncode, status.stderr) == (0, "")
        answer = json.loads(status.stdout)
        assert (answer["state"], answer["pid"]) == ("stopping", pid)
    finally:
        (tmp_path / "release").touch()
        wait_gone(pid)
    assert aiodaemon_cli("status", "--pidfile", pidfile).returncode == 3


def test_stop_while_the_executor_shuts_down_waits_and_forces_nothing(tmp_path: Path) -> None:
    """A second `stop` then is told "already stopping" and waits: no SIGTERM forcing the exit."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("executor_at_stop"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    stop = None
    try:
        os.kill(pid, signal.SIGTERM)
        wait_for((tmp_path / "main-ended").exists, what="main to be cancelled")
        stop = Watched([str(AIODAEMON), "stop", "--pidfile", str(pidfile)], {})
        said = ("already stopping", "sending SIGTERM")
        wait_for(lambda: any(map(stop.said, said)) or stop.proc.poll() is not None, 30, "the stop")
        (tmp_path / "release").touch()
        code, _, lines = stop.finish(30)
    finally:
        (tmp_path / "release").touch()
        if stop is not None:
            stop.kill()
        wait_gone(pid)
    assert (code, lines) == (
        0,
        [f"aiodaemon: already stopping (pid {pid}); waiting", f"aiodaemon: stopped (pid {pid})"],
    )
    exits = [r for r in read_json_lines(log) if r.get("event") == "exit"]
    assert [r["status"] for r in exits] == [0]
