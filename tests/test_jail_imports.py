"""A daemon in an empty chroot, dropped to nobody, imports nothing once main runs.

In the jail the interpreter's files are gone (and nobody may not read them
anyway): a module imported late fails there. ``tests/programs/jail_imports.py``
says every import after its main began; this test runs its daemon through
what a program and its operator do at run time, and finds none.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    has_line,
    kill_quietly,
    read_json_lines,
    read_pid,
    run_on_terminal,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root


def _readyz(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return answer


@pytest.mark.parametrize("loop", ["--uvloop", "--no-uvloop"])
def test_a_jailed_daemon_imports_nothing_once_main_runs(jail_base: Path, loop: str) -> None:
    """No ``late import`` line on its stderr, through reloads, rotation, probes and the stop."""
    pidfile, stderr, log = jail_base / "d.pid", jail_base / "stderr.txt", jail_base / "d.jsonl"
    started = aiodaemon_cli(
        "start", "tests.programs.jail_imports:main", "--chroot", jail_base / "jail",
        "--user", "nobody", "--pidfile", pidfile, "--stderr", stderr, "--log-file", log,
        "--health", f"unix:{jail_base / 'health.sock'}",
        "--listen", f"web=unix:{jail_base / 'web.sock'}",
        loop,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        wait_for(lambda: has_line(stderr, "main ran"), timeout=10)
        assert aiodaemon_cli("status", "--pidfile", pidfile).returncode == 0
        assert aiodaemon_cli("reload", "--pidfile", pidfile).returncode == 0
        assert aiodaemon_cli("reload", "--pidfile", pidfile).returncode == 1  # the hook fails
        assert _readyz(jail_base / "health.sock").startswith(b"HTTP/1.1 200")
        os.kill(pid, signal.SIGUSR1)
        os.kill(pid, signal.SIGWINCH)
        wait_for(
            lambda: any(r["event"] == "signal handler failed" for r in read_json_lines(log)),
            timeout=10,
        )
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    lines = stderr.read_text().splitlines()
    assert [line for line in lines if line.startswith(("late import", "error"))] == []
    events = [r["event"] for r in read_json_lines(log)]
    for event in ("unhandled exception in thread", "unhandled exception in event loop"):
        assert event in events
    assert events[-1] == "exit"


@pytest.mark.parametrize("log_file", [False, True], ids=["console", "log file"])
def test_a_jailed_foreground_daemon_on_a_terminal_imports_nothing_once_main_runs(
    jail_base: Path, log_file: bool
) -> None:
    """Its console records on the terminal, or the errors a log file's daemon echoes there."""
    logs: list[str | Path] = ["--log-file", jail_base / "d.jsonl"] if log_file else []
    output, status = run_on_terminal(
        [PYTHON, "-m", "aiodaemon", "run", "tests.programs.jail_imports:main",
         "--chroot", jail_base / "jail", "--user", "nobody", *logs],
        env={"JAIL_IMPORTS_RETURN": "1"},
    )  # fmt: skip
    assert status == 0, output
    assert "main ran" in output
    assert "late import" not in output
    assert "this thread fails" in output  # an error record, shown on the terminal
