"""As PID 1 of a real pid namespace (a container): JSON logs on stderr, probes, SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from .serving_support import PROGRAMS, exchange, http_get
from .support import PYTHON, clean_env, require_tool, wait_for


class PtyLines:
    """Collects the lines written to a pseudo-terminal, as a container runtime with ``-t``."""

    def __init__(self, master: int) -> None:
        self.lines: list[str] = []
        self._master = master
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every slave end is closed
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            self.lines.extend(line.decode(errors="replace").rstrip("\r") for line in complete)

    def join(self) -> None:
        """Wait until the writers have gone."""
        self._thread.join(timeout=15)

    def records(self) -> list[dict[str, object]]:
        """The lines parsed as JSON (every one must be)."""
        return [json.loads(line) for line in list(self.lines) if line.strip()]


def child_of(pid: int) -> int | None:
    """The first child of ``pid``, from /proc."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            if children:
                return int(children[0])
    return None


@pytest.mark.root
def test_pid1_logs_json_on_a_tty_and_drains_on_sigterm(tmp_path: Path) -> None:
    """PID 1 with a TTY stderr: JSON lines; probes answer; SIGTERM drains a request; exit 0."""
    unshare = require_tool("unshare")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            unshare,
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            PYTHON,
            "-m",
            "aiodaemon",
            "run",
            "serving_app:main",
            "--listen",
            "app=127.0.0.1:0",
            "--health",
            "127.0.0.1:0",
            "--drain-delay",
            "1",
        ],
        cwd=PROGRAMS,
        env=clean_env({"SERVING_DIR": str(tmp_path)}),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    output = PtyLines(master)
    try:

        def started() -> dict[str, object] | None:
            for record in output.records():
                if record["event"] == "ready":
                    return next(r for r in output.records() if r["event"] == "starting")
            return None

        starting = wait_for(started, 20, "the ready record on the TTY")
        sockets = starting["sockets"]
        assert isinstance(sockets, dict)
        app = str(sockets["app"]).rsplit(":", 1)
        health = str(sockets["health"]).rsplit(":", 1)
        app_address, health_address = (app[0], int(app[1])), (health[0], int(health[1]))

        async def probe_and_stop() -> list[str]:
            assert (await http_get(health_address, "/livez"))[:2] == (200, {"state": "running"})
            assert (await http_get(health_address, "/readyz"))[0] == 200
            request = asyncio.create_task(exchange(app_address, ["SLOW pid1"]))
            await asyncio.to_thread(
                wait_for,
                lambda: any(r["event"] == "request" for r in output.records()),
                15,
                "the request",
            )
            init = child_of(proc.pid)
            assert init is not None
            os.kill(init, signal.SIGTERM)
            await asyncio.to_thread(
                wait_for,
                lambda: any(r["event"] == "shutdown started" for r in output.records()),
                15,
                "the shutdown",
            )
            assert (await http_get(health_address, "/readyz"))[:2] == (503, {"state": "stopping"})
            return await asyncio.wait_for(request, timeout=15)

        assert asyncio.run(probe_and_stop()) == ["done pid1"]
        assert proc.wait(timeout=20) == 0
        output.join()
        records = output.records()  # every line is JSON: json.loads raised otherwise
        assert records[-1]["event"] == "exit"
        assert {"timestamp", "level", "event", "logger", "pid"} <= set(records[0])
        # The daemon runs as PID 2 under our init, in its own namespace.
        assert records[0]["pid"] == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
