"""The rebuilt run phase from outside: forced exits, stops during startup, lifespans, services.

Each daemon is a program in tests/programs/, started in the foreground with
its options as JSON and a record file it appends what happened to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    PYTHON,
    REPO,
    clean_env,
    kill_quietly,
    past_duplicate_window,
    read_json_lines,
    wait_for,
)
from .test_systemd import NotifyReceiver

PROGRAMS = REPO / "tests" / "programs"


class Program:
    """A foreground daemon running one of tests/programs/, with its record file."""

    def __init__(
        self,
        tmp_path: Path,
        name: str,
        *extra: str,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.log = tmp_path / "log.jsonl"
        self.record = tmp_path / "record.txt"
        self.record.touch()
        options = {"detach": False, "log_file": str(self.log), **options}
        self.proc = subprocess.Popen(
            [PYTHON, str(PROGRAMS / name), json.dumps(options), str(self.record), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or clean_env(),
        )
        self.pid = self.proc.pid

    def recorded(self) -> list[str]:
        """What the program recorded, line by line."""
        return self.record.read_text().splitlines()

    def wait_recorded(self, line: str, timeout: float = 10.0) -> None:
        """Wait until the program has recorded ``line``."""
        wait_for(lambda: line in self.recorded(), timeout, f"{line!r} recorded")

    def events(self) -> list[str]:
        """The ``event`` of every log line so far."""
        return [str(r["event"]) for r in read_json_lines(self.log)] if self.log.exists() else []

    def finish(self, timeout: float = 15.0) -> tuple[int, str]:
        """Wait for the exit; return the status and everything written on stderr."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[Any]:
    """Start programs; any left behind is killed."""
    started: list[Program] = []

    def start(name: str, *extra: str, **options: Any) -> Program:
        program = Program(tmp_path, name, *extra, **options)
        started.append(program)
        return program

    yield start
    for program in started:
        kill_quietly(program.pid)
        program.proc.communicate()


def test_stop_signals_end_the_daemon_even_with_a_stalled_log(programs: Any, tmp_path: Path) -> None:
    """TERM, TERM, INT with the log sink stalled: the daemon exits, its pidfile removed."""
    pidfile = tmp_path / "d.pid"
    # No log_file: records go to stderr, a pipe this test does not read until the end.
    d = programs("stalled_log_stop.py", log_file=None, shutdown_timeout=3, pidfile=str(pidfile))
    d.wait_recorded("main running")
    d.proc.send_signal(signal.SIGTERM)
    d.wait_recorded("stopping")
    past_duplicate_window()
    d.proc.send_signal(signal.SIGTERM)
    # The forced exit removes the pidfile first; before the fix it then drained
    # the stalled log, and this INT re-entered it there and hung it for good.
    wait_for(lambda: not pidfile.exists(), what="the pidfile removed")
    kill_quietly(d.pid, signal.SIGINT)
    # wait(), not communicate(): reading stderr would unstall the sink.
    assert d.proc.wait(timeout=20) == 128 + signal.SIGTERM


def test_forced_exit_releases_the_launcher_of_a_daemon_not_yet_ready(tmp_path: Path) -> None:
    """A second TERM during a stop before ready: `start` fails with the reason, no pidfile left."""
    pidfile, release = tmp_path / "d.pid", tmp_path / "release"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log.jsonl")}
    record = tmp_path / "record.txt"
    rest = [str(release)]
    launcher = subprocess.Popen(
        [PYTHON, str(PROGRAMS / "stubborn_startup.py"), json.dumps(options), str(record), *rest],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        wait_for(lambda: record.exists() and "startup" in record.read_text(), what="startup")
        pid = int(wait_for(lambda: pidfile.read_text().strip(), what="the daemon's pid"))
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: "cancel ignored" in record.read_text(), what="the ignored cancel")
        past_duplicate_window()
        os.kill(pid, signal.SIGTERM)
        _, err = launcher.communicate(timeout=15)
    finally:
        kill_quietly(launcher.pid)
        release.touch()
    assert launcher.returncode == 128 + signal.SIGTERM
    assert "forced exit (second stop signal during shutdown: SIGTERM)" in err
    assert not pidfile.exists()


def test_reload_before_manual_ready_tells_systemd_nothing(programs: Any, tmp_path: Path) -> None:
    """ready="manual": a HUP before notify_ready() sends no RELOADING=1/READY=1 to systemd."""
    receiver = NotifyReceiver(str(tmp_path / "notify.sock"))
    try:
        d = programs("manual_ready_reload.py", env=receiver.env(), ready="manual")
        d.wait_recorded("main waiting")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_recorded("ready")
        first = receiver.receive()
        assert "READY=1" in first.lines, first.lines
        assert d.recorded().index("reloaded") < d.recorded().index("ready")
        # Reloads after ready are announced as before.
        d.proc.send_signal(signal.SIGHUP)
        assert "RELOADING=1" in receiver.receive().lines
        assert "READY=1" in receiver.receive().lines
        d.proc.send_signal(signal.SIGTERM)
        assert d.finish()[0] == 0
        assert "STOPPING=1" in receiver.receive().lines
    finally:
        receiver.close()


def test_stop_during_startup_begins_shutdown_at_once(programs: Any, tmp_path: Path) -> None:
    """TERM during a startup hook that ignores cancellation: shutdown starts now, hooks run."""
    release = tmp_path / "release"
    d = programs("stubborn_startup.py", str(release))
    d.wait_recorded("startup")
    d.proc.send_signal(signal.SIGTERM)
    # The shutdown budget starts at the stop request, while the hook still holds
    # on: before the fix the whole shutdown_timeout (30 s) passed first.
    wait_for(lambda: "shutdown started" in d.events(), what="shutdown started")
    d.wait_recorded("cancel ignored")
    assert "shutdown hook" not in d.recorded()
    release.touch()
    status, err = d.finish()
    assert status == 1
    assert d.recorded() == ["startup", "cancel ignored", "shutdown hook"]
    assert "stopped by SIGTERM before it was ready" in err
    last = read_json_lines(d.log)[-1]
    assert last["event"] == "exit"
    assert last["status"] == 1
    assert last["reason"] == "stopped by SIGTERM before it was ready"


def test_stuck_startup_hook_is_cut_off_by_the_shutdown_timeout(
    programs: Any, tmp_path: Path
) -> None:
    """A startup hook that never lets go: one shutdown budget, then status 4 naming it."""
    d = programs("stubborn_startup.py", str(tmp_path / "never"), shutdown_timeout=1)
    d.wait_recorded("startup")
    d.proc.send_signal(signal.SIGTERM)
    status, _ = d.finish()
    assert status == 4
    stuck = [r for r in read_json_lines(d.log) if r["event"] == "task stuck at shutdown"]
    assert any("stubborn" in str(r["stack"]) for r in stuck)
    assert d.events().count("shutdown started") == 1


def test_failed_startup_runs_shutdown_hooks_and_completed_lifespans(programs: Any) -> None:
    """A startup hook raising: shutdown hooks all run, lifespans set up are torn down."""
    d = programs("failing_startup.py")
    status, err = d.finish()
    assert status == 1
    assert d.recorded() == [
        "startup first",
        "database open",
        "shutdown last",
        "database closed",
        "shutdown first",
    ]
    assert "startup hook __main__.broken failed: RuntimeError: config missing" in err
    # main was a coroutine object that never ran: closed, not left to warn.
    assert "never awaited" not in err


def test_lifespans_interleave_with_hooks(programs: Any) -> None:
    """Setups run among startup hooks in order, teardowns among shutdown hooks in reverse."""
    d = programs("lifespans.py", "ok")
    status, _ = d.finish()
    assert status == 0
    assert d.recorded() == [
        "outer setup starting",
        "middle startup",
        "inner setup",
        "main",
        "inner teardown",
        "middle shutdown",
        "outer teardown stopping",
    ]


@pytest.mark.parametrize(
    ("kind", "message", "tore_down"),
    [
        ("no-yield", "lifespan __main__.inner did not yield", False),
        ("two-yields", "lifespan __main__.inner yielded more than once", True),
        ("setup-raises", "lifespan __main__.inner failed: ValueError: inner cannot start", False),
    ],
)
def test_broken_lifespan_is_named_and_fails_the_exit(
    programs: Any, kind: str, message: str, tore_down: bool
) -> None:
    """A lifespan that does not yield exactly once (or raises): its name, non-zero exit."""
    d = programs("lifespans.py", kind)
    status, err = d.finish()
    assert status == 1
    assert message in err
    assert ("inner teardown" in d.recorded()) is tore_down
    # The others are unwound as usual.
    assert d.recorded()[-2:] == ["middle shutdown", "outer teardown stopping"]
    assert ("main" in d.recorded()) is (kind == "two-yields")


def test_lifespan_must_be_an_async_generator() -> None:
    """Decorating anything but an async generator function raises TypeError at once."""
    import aiodaemon

    daemon = aiodaemon.Daemon()

    async def not_a_generator() -> None:
        pass

    fn: Any = not_a_generator
    with pytest.raises(TypeError, match="async generator function"):
        daemon.lifespan(fn)
    assert "lifespan" in aiodaemon.__all__
    assert daemon.hooks.startup == daemon.hooks.shutdown == []


def test_a_service_sees_every_step_and_reload_results(programs: Any) -> None:
    """A service plugged in by a factory: its steps in order, state changes, reload results."""
    d = programs("service_probe.py")
    status, _ = d.finish()
    assert status == 3
    recorded = d.recorded()
    assert recorded[0] == "start starting"
    assert recorded.index("state starting -> running") < recorded.index("reload 1")
    assert "first [(True, None), (True, None), (True, None)] 1" in recorded
    assert "second (False, 'ValueError: bad line 3')" in recorded
    assert "third True True" in recorded
    assert "late: the daemon is stopping; the reload did not run" in recorded
    assert [line for line in recorded if line.startswith("reload ")] == [
        "reload 1",
        "reload 2",
        "reload 3",
    ]
    tail = recorded[recorded.index("state running -> stopping") :]
    assert [line for line in tail if not line.startswith("late")] == [
        "state running -> stopping",
        "not_ready",
        "stop_accepting",
        "wait_finished",
        "shutdown hook",
        "close",
        "state stopping -> stopped",
    ]


def test_startup_errors_keep_the_system_error_and_its_errno(tmp_path: Path) -> None:
    """An acquire failure keeps the OSError (and its errno) as its cause, in a one-line message."""
    import errno

    from aiodaemon._prefork._pidfile import acquire_pidfile
    from aiodaemon._run._outcome import Outcome
    from aiodaemon.exceptions import StartupError

    with pytest.raises(StartupError) as caught:
        acquire_pidfile(tmp_path / "missing" / "d.pid")
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOENT
    assert "\n" not in str(caught.value)
    outcome = Outcome()
    outcome.fail(str(caught.value), caught.value)
    assert outcome.errno == errno.ENOENT
