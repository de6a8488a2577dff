"""A child the program forks (multiprocessing's fork context, os.fork) has signals of its own.

Before, it inherited the daemon's handlers and the loop's wakeup fd: a SIGTERM
or SIGHUP sent to the child stopped or reloaded the daemon, the child could not
be stopped, and multiprocessing's terminate() at exit hung the daemon; a
process group's SIGTERM counted twice and forced exit 143 (audit-race R6).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    ForegroundDaemon,
    clean_env,
    is_alive,
    kill_quietly,
    program,
    read_json_lines,
    wait_for,
    wait_gone,
)

#: The whole shutdown's budget: the daemon and its child must be gone within it.
SHUTDOWN_TIMEOUT = 5


def child_of(recorded: list[str]) -> int | None:
    """The child's pid, once the startup hook recorded it."""
    return next((int(line.split()[1]) for line in recorded if line.startswith("child ")), None)


def start(
    tmp_path: Path, daemons: list[ForegroundDaemon], kind: str, **options: object
) -> tuple[ForegroundDaemon, int]:
    """Start ``forked_child`` with a ``kind`` child; return it (ready) and the child's pid."""
    d = ForegroundDaemon(
        tmp_path, "forked_child", kind, shutdown_timeout=SHUTDOWN_TIMEOUT, **options
    )
    daemons.append(d)
    child = wait_for(lambda: child_of(d.recorded()), what="the child's pid")
    d.wait_event("ready")
    return d, child


@pytest.mark.parametrize(
    ("kind", "sig", "uvloop"),
    [
        ("mp", signal.SIGTERM, None),
        ("mp", signal.SIGTERM, False),
        ("fork", signal.SIGTERM, None),
        ("mp", signal.SIGHUP, None),
        ("fork", signal.SIGHUP, False),
    ],
    ids=["mp-TERM-uvloop", "mp-TERM-asyncio", "fork-TERM", "mp-HUP", "fork-HUP-asyncio"],
)
def test_a_signal_to_the_child_is_the_childs(
    tmp_path: Path,
    daemons: list[ForegroundDaemon],
    kind: str,
    sig: signal.Signals,
    uvloop: bool | None,
) -> None:
    """SIGTERM/SIGHUP to the forked child ends the child; the daemon neither stops nor reloads."""
    d, child = start(tmp_path, daemons, kind, uvloop=uvloop)
    try:
        os.kill(child, sig)
        wait_gone(child)
        # Signals reach the loop in order: once SIGWINCH's handler ran, a
        # signal the child's handler had passed on would have been seen.
        d.signal(signal.SIGWINCH)
        wait_for(lambda: "winch" in d.recorded(), what="the SIGWINCH handler")
        assert "signal received" not in d.events()
        assert "reload" not in d.recorded()
        assert is_alive(d.pid)
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=SHUTDOWN_TIMEOUT + 10) == 0
    finally:
        kill_quietly(child)


def test_sigterm_to_the_daemon_ends_it_and_its_child(
    tmp_path: Path, daemons: list[ForegroundDaemon]
) -> None:
    """SIGTERM to the daemon: graceful exit 0 within its budget, multiprocessing's child ended."""
    d, child = start(tmp_path, daemons, "mp")
    try:
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=SHUTDOWN_TIMEOUT + 10) == 0
        wait_gone(child)
        assert d.recorded()[-1] == "shutdown"
    finally:
        kill_quietly(child)


def test_sigterm_to_the_process_group_is_one_graceful_stop(tmp_path: Path) -> None:
    """A supervisor's SIGTERM to the whole group (daemon and child): one graceful shutdown, 0."""
    record, log = tmp_path / "record.txt", tmp_path / "log.jsonl"
    record.touch()
    options = {"detach": False, "log_file": str(log), "shutdown_timeout": SHUTDOWN_TIMEOUT}
    proc = subprocess.Popen(
        [PYTHON, str(program("forked_child")), json.dumps(options), str(record), "mp"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        process_group=0,
    )
    child = 0
    try:
        child = wait_for(lambda: child_of(record.read_text().splitlines()), what="the child")
        wait_for(
            lambda: log.exists() and any(r["event"] == "ready" for r in read_json_lines(log)),
            what="ready",
        )
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT + 10)
        wait_gone(child)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
        if child:
            kill_quietly(child)
    assert proc.returncode == 0, err
    assert "forced exit" not in err
    assert record.read_text().splitlines()[-1] == "shutdown"
    received = [r for r in read_json_lines(log) if r["event"] == "signal received"]
    assert len(received) == 1
