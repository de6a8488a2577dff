"""A call still running in an executor thread at the shutdown timeout names itself in the log."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from .support import (
    ForegroundDaemon,
    is_alive,
    kill_quietly,
    read_json_lines,
    spawn_program,
    wait_for,
)


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio"])
def test_a_subprocess_run_in_an_executor_past_the_timeout_is_logged_with_its_stack(
    tmp_path: Path, uvloop: bool | None
) -> None:
    """Status 4; the record names the program's call and where it waits; the child runs on."""
    log, recorded = tmp_path / "log.jsonl", tmp_path / "record.txt"
    recorded.touch()
    options = {"detach": False, "log_file": str(log), "shutdown_timeout": 1, "uvloop": uvloop}
    child = 0
    with spawn_program("executor_child", json.dumps(options), recorded) as proc:
        try:
            line = wait_for(lambda: recorded.read_text().strip(), 20, "the child's pid")
            child = int(line.removeprefix("child "))
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            kill_quietly(proc.pid)
    try:
        assert proc.returncode == 4
        (call,) = [
            r
            for r in read_json_lines(log)
            if r["event"] == "executor call still running at shutdown"
        ]
        assert call["level"] == "error"
        assert str(call["thread"]).endswith("_0")
        # The program's own call, where it waits for its child.
        stack = str(call["stack"])
        assert 'executor_child.py", line ' in stack
        assert ", in wait_for_child\n    return child.wait()\n" in stack
        # aiodaemon signals the daemon only: the program's child is its own to stop.
        assert is_alive(child)
    finally:
        if child:
            kill_quietly(child)


@pytest.mark.root
def test_a_shutdown_step_that_fails_is_a_failed_exit(tmp_path: Path) -> None:
    """No thread left to shut the default executor down: logged, and the exit is 1, not 0."""
    uid = 200_000 + os.getpid() % 100_000
    running = ForegroundDaemon(tmp_path, "no_thread_at_shutdown", user=str(uid), group="65534")
    try:
        running.wait_event("limited")
        running.signal(signal.SIGTERM)
        assert running.wait() == 1
        (failed,) = [line for line in running.lines() if line["event"] == "shutdown failed"]
        assert failed["level"] == "error"
        assert "can't start new thread" in json.dumps(failed["exception"])
        exit_line = running.lines()[-1]
        assert exit_line["event"] == "exit"
        assert exit_line["status"] == 1
        assert str(exit_line["reason"]).startswith("shutdown failed: ")
    finally:
        running.kill()
