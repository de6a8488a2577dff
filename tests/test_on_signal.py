"""@aiodaemon.on_signal: refused signals at decoration, real signals to real daemons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiodaemon

from .support import (
    PYTHON,
    ForegroundDaemon,
    children,
    clean_env,
    proc_status,
    program,
    require_tool,
    signal_pending,
    wait_for,
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[ForegroundDaemon]:
    """The on_signal program in the foreground, killed at the end if still running."""
    running = ForegroundDaemon(tmp_path, "on_signal_app")
    yield running
    running.kill()


async def handler() -> None:
    """A valid handler."""


@pytest.mark.parametrize(
    ("signum", "instead"),
    [
        (signal.SIGTERM, "on_shutdown"),
        (signal.SIGINT, "on_shutdown"),
        (signal.SIGHUP, "on_reload"),
        (signal.SIGUSR1, "reopens the log files"),
        (signal.SIGUSR2, "aiodaemon upgrade"),
        (signal.SIGCHLD, "create_subprocess"),
        (signal.SIGKILL, "cannot be caught"),
        (signal.SIGSTOP, "cannot be caught"),
    ],
)
def test_owned_signals_are_refused(signum: signal.Signals, instead: str) -> None:
    """Signals the framework owns or nobody can catch are refused, naming what to use."""
    with pytest.raises(ValueError, match=rf"on_signal\({signum.name}\) is refused: .*{instead}"):
        aiodaemon.Daemon().on_signal(signum)(handler)


@pytest.mark.parametrize("signum", [0, -1, 65, 10_000])
def test_invalid_numbers_are_refused(signum: int) -> None:
    """A number that is no signal is refused at decoration."""
    with pytest.raises(ValueError, match=f"on_signal: {signum} is not a signal number"):
        aiodaemon.on_signal(signum)


def test_bad_handlers_are_refused() -> None:
    """A sync function or a non-int signal is refused at decoration."""

    def sync() -> None:
        pass

    with pytest.raises(TypeError, match="on_signal handler must be an async function"):
        aiodaemon.on_signal(signal.SIGWINCH)(sync)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="a signal number is needed"):
        aiodaemon.on_signal("SIGWINCH")  # type: ignore[arg-type]


def test_decorator_returns_the_function() -> None:
    """The decorator gives the handler back, so it stays callable and stackable."""
    assert aiodaemon.Daemon().on_signal(signal.SIGWINCH)(handler) is handler


def test_handler_gets_the_context_and_runs_never_overlap(daemon: ForegroundDaemon) -> None:
    """Signals during a run coalesce into exactly one more run, after the first ends."""
    gate = daemon.record.with_name("gate")
    daemon.wait_event("ready")
    daemon.signal(signal.SIGWINCH)
    wait_for(lambda: daemon.recorded() == ["start 1 RUNNING"], what="the first run")
    for _ in range(3):
        daemon.signal(signal.SIGWINCH)
    gate.touch()
    wait_for(lambda: "start 2 RUNNING" in daemon.recorded(), what="the coalesced run")
    gate.touch()
    wait_for(lambda: "end 2" in daemon.recorded(), what="the second run's end")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert daemon.recorded() == [
        "start 1 RUNNING",
        "end 1",
        "start 2 RUNNING",
        "end 2",
        "shutdown hook",
    ]


def test_failing_handler_is_logged_and_the_daemon_goes_on(daemon: ForegroundDaemon) -> None:
    """A handler that raises is logged at error with its traceback; the next signal runs it."""
    daemon.wait_event("ready")
    daemon.signal(signal.SIGALRM)
    daemon.wait_event("signal handler failed")
    daemon.signal(signal.SIGALRM)
    wait_for(lambda: "alarm ok" in daemon.recorded(), what="the second alarm")
    daemon.signal(signal.SIGRTMIN + 1)
    wait_for(lambda: "rt" in daemon.recorded(), what="the real-time signal's handler")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    (failed,) = [line for line in daemon.lines() if line["event"] == "signal handler failed"]
    assert failed["level"] == "error"
    assert failed["signal"] == "SIGALRM"
    assert failed["handler"] == "__main__.alarm"
    assert "first alarm fails" in json.dumps(failed["exception"])


def test_running_handler_is_cancelled_before_shutdown_hooks(daemon: ForegroundDaemon) -> None:
    """SIGTERM during a run cancels it (logged), then shutdown hooks run, and the exit is 0."""
    daemon.wait_event("ready")
    daemon.signal(signal.SIGWINCH)
    wait_for(lambda: daemon.recorded() == ["start 1 RUNNING"], what="the run")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert daemon.recorded() == ["start 1 RUNNING", "cancelled 1", "shutdown hook"]
    assert "signal handler cancelled" in daemon.events()


def test_a_run_coalesced_before_the_stop_does_not_start_after_it(tmp_path: Path) -> None:
    """A signal during a run, then SIGTERM: that run ends, the one more it asked for never starts.

    The run it coalesced into began once the first ended, during the drain delay
    ("Once shutdown begins no run starts"), and was cancelled at its end.
    """
    daemon = ForegroundDaemon(tmp_path, "on_signal_app", drain_delay=2.0)
    try:
        gate = daemon.record.with_name("gate")
        daemon.wait_event("ready")
        daemon.signal(signal.SIGWINCH)
        wait_for(lambda: daemon.recorded() == ["start 1 RUNNING"], what="the first run")
        daemon.signal(signal.SIGWINCH)
        # Taken before the SIGTERM, so that it coalesces with the run going on.
        wait_for(lambda: not signal_pending(daemon.pid, signal.SIGWINCH), what="the signal taken")
        daemon.signal(signal.SIGTERM)
        daemon.wait_event("shutdown started")
        gate.touch()
        assert daemon.wait() == 0
    finally:
        daemon.kill()
    assert daemon.recorded() == ["start 1 RUNNING", "end 1", "shutdown hook"]


@pytest.mark.root
def test_pid1_forwards_the_handled_signals(tmp_path: Path) -> None:
    """As PID 1, the init passes on_signal's signals (SIGALRM, SIGRTMIN+1) to the daemon."""
    unshare = require_tool("unshare")
    record = tmp_path / "record.txt"
    record.touch()
    options = json.dumps({"detach": False, "log_file": str(tmp_path / "log.jsonl")})
    app = str(program("on_signal_app"))
    proc = subprocess.Popen(
        [unshare, "--pid", "--fork", "--kill-child", PYTHON, app, options, str(record)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        init = wait_for(lambda: children(proc.pid), what="the namespace's init")[0]
        wait_for(lambda: children(init), what="the daemon under init")
        log = tmp_path / "log.jsonl"
        wait_for(lambda: log.exists() and '"ready"' in log.read_text(), what="ready")
        os.kill(init, signal.SIGALRM)
        wait_for(lambda: "signal handler failed" in log.read_text(), what="the first alarm")
        os.kill(init, signal.SIGALRM)
        os.kill(init, signal.SIGRTMIN + 1)
        wait_for(lambda: {"alarm ok", "rt"} <= set(record.read_text().splitlines()))
        os.kill(init, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


#: Sends SIGALRM and SIGRTMIN+1 (both fatal by default) to argv[1] every ~50 µs until it is gone.
_FLOOD = """
import os, signal, sys, time
pid = int(sys.argv[1])
try:
    while True:
        os.kill(pid, signal.SIGALRM)
        os.kill(pid, signal.SIGRTMIN + 1)
        until = time.perf_counter() + 50e-6
        while time.perf_counter() < until:
            pass
except ProcessLookupError:
    pass
"""


def _stopped_under_flood(run_dir: Path) -> tuple[int, str]:
    """Start the on_signal program, flood it, SIGTERM it: its exit status and last event."""
    running = ForegroundDaemon(run_dir, "on_signal_app")
    flood = None
    try:
        running.wait_event("ready")
        flood = subprocess.Popen([PYTHON, "-c", _FLOOD, str(running.pid)], env=clean_env())
        wait_for(lambda: "alarm ok" in running.recorded(), what="the flood's first alarms")
        running.signal(signal.SIGTERM)
        return running.wait(), running.events()[-1]
    finally:
        running.kill()
        if flood is not None:
            flood.kill()
            flood.wait()


def test_handled_signals_never_kill_the_daemon_while_it_stops(tmp_path: Path) -> None:
    """A flood of on_signal's signals through the whole shutdown: every stop still exits 0.

    Their default action ends the process; the moment the loop gives a
    handler back must not be one in which they have it.
    """
    for attempt in range(12):
        run_dir = tmp_path / str(attempt)
        run_dir.mkdir()
        assert _stopped_under_flood(run_dir) == (0, "exit"), f"attempt {attempt}"


@pytest.mark.parametrize("use_uvloop", [False, None], ids=["asyncio", "default-loop"])
def test_a_stop_signal_is_not_lost_after_a_thousand_others(
    tmp_path: Path, use_uvloop: bool | None
) -> None:
    """Sync code holds the loop while 1,000 handled signals queue up; a SIGTERM after them stops it.

    Each signal is a byte in the loop's wakeup socket, which holds a few
    hundred: the SIGTERM's byte is lost, the signal must not be (nor be
    reported as an error each time a byte does not fit).
    """
    running = ForegroundDaemon(tmp_path, "on_signal_blocked_app", uvloop=use_uvloop)
    try:
        running.wait_event("ready")
        running.signal(signal.SIGWINCH)
        wait_for(lambda: running.recorded() == ["blocked"], what="the loop held")
        for _ in range(1000):
            running.signal(signal.SIGRTMIN + 1)
        # All delivered first: the kernel would hand over a SIGTERM before the
        # real-time signals still pending, while its byte still fits.
        wait_for(lambda: not _any_pending(running.pid), what="the signals delivered")
        running.signal(signal.SIGTERM)
        (tmp_path / "gate").touch()
        assert running.wait() == 0
        (received,) = [line for line in running.lines() if line["event"] == "signal received"]
        assert received["signal"] == "SIGTERM"
        assert running.events()[-1] == "exit"
        assert "exception ignored" not in running.events()
    finally:
        running.kill()


def _any_pending(pid: int) -> bool:
    """Whether any signal waits, undelivered, for the process."""
    status = proc_status(pid)
    return any(int(status[field], 16) for field in ("ShdPnd", "SigPnd"))
