"""Signals that race the daemon's start (sent the instant the pid is written) or its very end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .support import (
    has_line,
    is_alive,
    kill_quietly,
    read_json_lines,
    spawn_program,
    wait_for,
    wait_gone,
)

#: Starts per signal: the window is a few milliseconds, each start races it once.
STARTS = 20
#: The time limit of a test of STARTS starts: one start takes a second or two on a
#: busy machine (30 s for a test was seen), the suite's 60 s is for one daemon.
MANY_STARTS = pytest.mark.timeout(300)


def _start_and_signal(
    tmp_path: Path, n: int, sig: int, name: str = "idle"
) -> tuple[subprocess.Popen[str], int, Path]:
    """Start a detached daemon and send ``sig`` as soon as its pidfile holds a pid."""
    pidfile, log = tmp_path / f"d{n}.pid", tmp_path / f"d{n}.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "control": False}
    launcher = spawn_program(name, json.dumps(options))
    deadline = time.monotonic() + 20
    pid = 0
    # A busy poll, as a logrotate postrotate racing a restart would be: the
    # signal leaves within microseconds of the pid's arrival.
    while not pid:
        try:
            text = pidfile.read_bytes()
        except FileNotFoundError:
            text = b""
        if text.endswith(b"\n"):
            pid = int(text)
            os.kill(pid, sig)
        elif time.monotonic() > deadline:
            launcher.kill()
            raise AssertionError(f"no pid in {pidfile}: {launcher.communicate()[1]}")
    return launcher, pid, log


@MANY_STARTS
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1], ids=["HUP", "USR1"])
def test_a_reload_or_reopen_signal_right_after_the_pid_is_written_is_survived(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGHUP/SIGUSR1 sent the instant the pidfile is written: the daemon starts and runs."""
    for n in range(STARTS):
        launcher, pid, log = _start_and_signal(tmp_path, n, sig)
        try:
            _, err = launcher.communicate(timeout=30)
            assert launcher.returncode == 0, f"start {n}: {err}"
            assert is_alive(pid), f"start {n}: the daemon died"
            kill_quietly(pid, signal.SIGTERM)
            wait_gone(pid)
        finally:
            kill_quietly(pid)
        events = [r["event"] for r in read_json_lines(log)]
        assert "signal received" in events, f"start {n}: {events}"
        assert events[-1] == "exit", f"start {n}: {events}"


@MANY_STARTS
def test_an_on_signal_signal_right_after_the_pid_is_written_is_handled(tmp_path: Path) -> None:
    """SIGALRM, the program's on_signal, sent the instant the pidfile is written: never a death.

    Its default action ends the process; it waits until its handler exists.
    """
    for n in range(STARTS):
        launcher, pid, log = _start_and_signal(tmp_path, n, signal.SIGALRM, "idle_on_signal")
        try:
            _, err = launcher.communicate(timeout=30)
            assert launcher.returncode == 0, f"start {n}: {err}"
            wait_for(lambda: _has_event(log, "alarm handled"), 10, f"start {n}: the handler")  # noqa: B023
            assert is_alive(pid), f"start {n}: the daemon died"
            kill_quietly(pid, signal.SIGTERM)
            wait_gone(pid)
        finally:
            kill_quietly(pid)
        assert read_json_lines(log)[-1]["event"] == "exit", f"start {n}"


@MANY_STARTS
def test_a_stop_signal_right_after_the_pid_is_written_stops_gracefully(tmp_path: Path) -> None:
    """SIGTERM sent the instant the pidfile is written: a graceful stop, never a death."""
    for n in range(STARTS):
        launcher, pid, log = _start_and_signal(tmp_path, n, signal.SIGTERM)
        try:
            _, err = launcher.communicate(timeout=30)
            wait_gone(pid)
        finally:
            kill_quietly(pid)
        if launcher.returncode != 0:
            # Before ready (the usual case): the launcher says why, as for any early stop.
            assert launcher.returncode == 1, f"start {n}: {err}"
            assert "stopped by SIGTERM before it was ready" in err, f"start {n}: {err}"
        records = read_json_lines(log)
        assert records[-1]["event"] == "exit", f"start {n}: {records}"
        assert not (tmp_path / f"d{n}.pid").exists()


@MANY_STARTS
@pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM], ids=["HUP", "USR1", "TERM"]
)
def test_a_signal_right_after_the_pid_is_written_is_handled_with_program_threads(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A program that started a thread before run() (foreground): the signal that races the
    start reaches that thread, not the blocked main thread; it is handled all the same."""
    for n in range(STARTS):
        _race_a_threaded_start(tmp_path / f"d{n}.pid", tmp_path / f"d{n}.jsonl", sig, n)


def _race_a_threaded_start(pidfile: Path, log: Path, sig: signal.Signals, n: int) -> None:
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    proc = spawn_program("idle_threaded", json.dumps(options))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_bytes().endswith(b"\n"), 20, "pid")
        proc.send_signal(sig)
        wait_for(
            lambda: proc.poll() is not None or _has_event(log, "signal received"),
            20,
            "the signal's record",
        )
        if sig != signal.SIGTERM:
            assert proc.poll() is None, f"start {n}: killed by {sig!r} ({proc.returncode})"
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    # Never killed by the signal's default action: a graceful exit, its record last.
    assert proc.returncode in (0, 1), f"start {n}: {proc.returncode} {err}"
    assert read_json_lines(log)[-1]["event"] == "exit", f"start {n}"
    assert not pidfile.exists()


def _has_event(log: Path, event: str) -> bool:
    return log.exists() and any(r["event"] == event for r in read_json_lines(log))


@pytest.mark.parametrize("use_uvloop", [False, None], ids=["asyncio", "default-loop"])
@pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2], ids=["HUP", "USR1", "USR2"]
)
def test_a_signal_after_the_loop_closed_does_not_change_the_exit(
    tmp_path: Path, sig: signal.Signals, use_uvloop: bool | None
) -> None:
    """SIGHUP/SIGUSR1/SIGUSR2 while the daemon exits (loop closed): ignored, status 0."""
    record, release, pidfile = tmp_path / "record.txt", tmp_path / "release", tmp_path / "d.pid"
    record.touch()
    options = {
        "detach": False,
        "pidfile": str(pidfile),
        "log_file": str(tmp_path / "log.jsonl"),
        "uvloop": use_uvloop,
    }
    proc = spawn_program("late_signals", json.dumps(options), record, release)
    try:

        def recorded(line: str) -> bool:
            return has_line(record, line)

        wait_for(lambda: recorded("main running"), what="main running")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: recorded("at exit"), what="the exit, after the loop closed")
        proc.send_signal(sig)
        release.touch()
        _, err = proc.communicate(timeout=30)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert proc.returncode == 0, err
    assert recorded("released")
    assert not pidfile.exists()


@pytest.mark.parametrize(
    ("sig", "run"),
    [(signal.SIGHUP, "once"), (signal.SIGTERM, "once"), (signal.SIGTERM, "again")],
    ids=["HUP", "TERM", "TERM-second-run"],
)
def test_a_signal_while_asyncio_installs_its_handlers_is_handled(
    tmp_path: Path, sig: signal.Signals, run: str
) -> None:
    """Sent to a program thread as asyncio's loop begins installing its handlers: not lost."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log), "uvloop": False}
    with spawn_program("signal_in_handler_setup", json.dumps(options), sig.name, run) as proc:
        try:
            wait_for(lambda: _has_event(log, "ready") or proc.poll() is not None, 20, "the start")
            wait_for(lambda: _has_event(log, "signal received"), 10, "the signal's record")
            if sig == signal.SIGHUP:
                wait_for(lambda: _has_event(log, "reload finished"), 10, "the reload")
                proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            kill_quietly(proc.pid)
    if sig == signal.SIGTERM:
        # Its handler ran before the loop had any (the program waits for that).
        assert proc.returncode == 1
        assert err.splitlines()[-1] == "aiodaemon: stopped by SIGTERM before it was ready"
    else:
        assert proc.returncode == 0, err
    assert read_json_lines(log)[-1]["event"] == "exit"
