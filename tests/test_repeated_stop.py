"""A stop signal delivered twice (GNU timeout signals a child, then its group) is one request."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from aiodaemon._run._forced import REPEAT_WINDOW

from .support import (
    has_line,
    kill_quietly,
    program,
    python,
    read_json_lines,
    signal_pending,
    spawn_program,
    wait_for,
    wait_gone,
)


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_stop_signal_delivered_twice_before_the_loop_reads_it_is_one_request(
    tmp_path: Path, uvloop: bool
) -> None:
    """Both SIGTERMs reach the daemon while its loop is busy: shutdown hooks run, exit 0."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    started = python([program("double_stop"), json.dumps(options), tmp_path])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    wait_for((tmp_path / "blocking").exists, what="main to block the loop")
    os.kill(pid, signal.SIGTERM)
    # Delivered (not merged with the next one), yet unread by the blocked loop.
    wait_for(lambda: not signal_pending(pid, signal.SIGTERM), what="the first SIGTERM delivered")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    records = read_json_lines(log)
    assert (tmp_path / "hook").read_text() == "done"
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    received = [r for r in records if r["event"] == "signal received"]
    assert [r.get("repeated") for r in received] == [None, True]


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_second_stop_signal_while_a_startup_hook_blocks_the_loop_forces_the_exit(
    tmp_path: Path, uvloop: bool
) -> None:
    """Ctrl-C, then Ctrl-C again a second later, while sync code blocks the loop: exit 130 at once.

    Both waited for the loop, which read them as one (or never, for code that
    does not return): the second press did nothing.
    """
    record, pidfile = tmp_path / "record.txt", tmp_path / "d.pid"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "uvloop": uvloop}
    proc = spawn_program("startup_stop", json.dumps(options), str(record), "block")
    try:
        wait_for(lambda: has_line(record, "startup begun"), what="the hook to block the loop")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: not signal_pending(proc.pid, signal.SIGINT), what="the first delivered")
        # Timed from its delivery, not its sending: a daemon not scheduled for a
        # while after the kill notes it late, and the second would be too close.
        delivered = time.monotonic()
        # Not a wait for an event: what makes it a second request is the time between.
        time.sleep(max(0.0, delivered + REPEAT_WINDOW + 0.1 - time.monotonic()))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        kill_quietly(proc.pid)
        proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert (
        "aiodaemon: forced exit (second stop signal while the event loop was blocked: SIGINT),"
        " status 130"
    ) in err
    assert not has_line(record, "startup returned")
    assert not pidfile.exists()
