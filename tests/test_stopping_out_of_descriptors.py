"""A daemon out of descriptors when it begins to stop still says so: ``status``, ``stop``.

Its stopping mark (an abstract socket ``status`` and ``stop`` look for) was
opened when the shutdown began: out of descriptors then (a leak in the
program, a low RLIMIT_NOFILE), there was none. ``status`` said ``running``
for the whole shutdown and ``stop``, finding the control socket dropping its
connections, sent a second SIGTERM, which forced the exit (records lost).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    is_alive,
    program,
    python,
    read_json_lines,
    wait_for,
    wait_gone,
)


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_daemon_stopping_out_of_descriptors_is_stopping(tmp_path: Path, uvloop: bool) -> None:
    """``status`` says ``stopping`` (0); ``stop`` waits, no second SIGTERM; the exit is 0."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    marker, gate = tmp_path / "full", tmp_path / "gate"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    started = python([program("fds_gone_after_ready"), json.dumps(options), marker, gate])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        wait_for(marker.exists, what="the daemon to use up its descriptors")
        os.kill(pid, signal.SIGTERM)
        wait_for(
            lambda: any(r["event"] == "shutdown hook waits" for r in read_json_lines(log)),
            what="the shutdown hook",
        )
        # libuv drops the connection it cannot take, asyncio's loop leaves it
        # unanswered in the backlog: either way the mark says "stopping".
        status = aiodaemon_cli("status", "--pidfile", pidfile, "--timeout", "1")
        assert (status.returncode, status.stdout) == (
            0,
            f"stopping (pid {pid}, pidfile {pidfile})\n",
        ), status.stderr
        said = tmp_path / "stop.stderr"
        with said.open("w") as stderr:
            stop = subprocess.Popen(
                [str(AIODAEMON), "stop", "--pidfile", str(pidfile)],
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            wait_for(lambda: said.read_text().endswith("\n"), what="the stop's first line")
            gate.touch()
            assert stop.wait(timeout=60) == 0
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait()
        assert said.read_text() == (
            f"aiodaemon: already stopping (pid {pid}); waiting\naiodaemon: stopped (pid {pid})\n"
        )
    finally:
        gate.touch()
        wait_gone(pid)
    [end] = [r for r in read_json_lines(log) if r["event"] == "exit"]
    assert end["status"] == 0


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_a_stop_request_that_takes_the_last_descriptor_is_answered_unwatched(
    tmp_path: Path, uvloop: bool
) -> None:
    """No copy of the stop's connection to tell the exit on: answered all the same, no error.

    Its copy (``os.dup``) failed with EMFILE: logged as ``control command
    failed`` with a traceback, and the command answered "internal error".
    """
    pidfile, log, marker = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "one"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "uvloop": uvloop}
    started = python([program("fds_one_left"), json.dumps(options), marker])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        wait_for(marker.exists, what="the daemon to leave itself one descriptor")
        stop = aiodaemon_cli("stop", "--pidfile", pidfile)
    finally:
        if is_alive(pid):
            os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    assert (stop.returncode, stop.stderr) == (0, f"aiodaemon: stopped (pid {pid})\n")
    records = read_json_lines(log)
    # asyncio's loop tries a second accept at once, and logs its EMFILE (see test_accept_limit).
    accept = "socket.accept() out of system resource"
    errors = [r for r in records if r["level"] in ("error", "critical")]
    assert [r for r in errors if r.get("detail") != accept] == []
    assert [r["by"] for r in records if r["event"] == "stop requested"] == ["control socket"]
    [end] = [r for r in records if r["event"] == "exit"]
    assert end["status"] == 0
