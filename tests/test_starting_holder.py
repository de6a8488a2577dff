"""Commands meeting a daemon that is still starting: they wait for, or say, what it came to.

A second ``start`` (or ``run``) waits for the first daemon's verdict: ready, it is
"already running"; failed, nothing runs, and it starts its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .control_support import ControlApp, Watched, open_control_app
from .support import is_alive, wait_for

#: What the first daemon's start says when its startup hook ("wait-fail") is released.
FAILED = (
    "aiodaemon: startup hook control_app.warm_up failed: RuntimeError: startup refused by the test"
)


@pytest.fixture
def app() -> Iterator[ControlApp]:
    """A control_app directory; whatever holds its pidfile at the end is killed."""
    with open_control_app() as app:
        yield app


def _start_args(app: ControlApp, command: str = "start", *extra: str) -> list[str | Path]:
    return [command, "control_app:main", "--pidfile", app.pidfile, *extra,
            "--log-file", app.log, "--shutdown-timeout", "10"]  # fmt: skip


def _in_startup_hook(app: ControlApp) -> int:
    """The pid of the daemon once ``status`` shows it waiting in its startup hook."""
    found: list[int] = []

    def waiting() -> bool:
        status = app.cli("status", "--pidfile", app.pidfile)
        match = re.match(r"starting \(pid (\d+),", status.stdout)
        if match is None or "waiting on startup hook control_app.warm_up" not in status.stdout:
            return False
        found.append(int(match.group(1)))
        return True

    wait_for(waiting, 30, "the first daemon in its startup hook")
    return found[-1]


def _first_start(app: ControlApp, mode: str) -> tuple[Watched, int]:
    """``start`` in the background, its startup hook held in ``mode``; the command and the pid."""
    app.steer("startup", mode)
    first = app.watch(*_start_args(app))
    try:
        return first, _in_startup_hook(app)
    except BaseException:
        first.kill()
        raise


def _waiting(pid: int) -> str:
    return f"aiodaemon: pid {pid} is starting; waiting for it to be ready"


@pytest.mark.parametrize(("command", "code"), [("start", 0), ("run", 3)])
def test_start_while_the_first_is_starting_waits_and_then_says_already_running(
    app: ControlApp, command: str, code: int
) -> None:
    """The first daemon becomes ready: "already running" only then (start 0, run 3)."""
    first, pid = _first_start(app, "wait")
    second = None
    try:
        second = app.watch(*_start_args(app, command))
        wait_for(lambda: second.said(_waiting(pid)) or second.proc.poll() is not None, 30,
                 "the second command")  # fmt: skip
        assert second.proc.poll() is None, second.lines  # not "already running" at once
        app.steer("release")
        first_code, first_out, _ = first.finish()
        result = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert (first_code, first_out) == (0, f"{pid}\n")
    already = f"aiodaemon: already running (pid {pid}, pidfile {app.pidfile})"
    assert result == (code, "", [_waiting(pid), already])
    assert len(app.records("starting")) == 1  # the second started nothing
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {pid}, pidfile {app.pidfile})"


def test_start_while_the_first_is_starting_starts_its_own_when_that_start_fails(
    app: ControlApp,
) -> None:
    """The first daemon's start fails: nothing runs, so the second start starts its daemon."""
    first, pid = _first_start(app, "wait-fail")
    second = None
    try:
        app.steer("startup", "")  # read by the first hook already: the second daemon's passes
        second = app.watch(*_start_args(app))
        wait_for(lambda: second.said(_waiting(pid)) or second.proc.poll() is not None, 30,
                 "the second start")  # fmt: skip
        assert second.proc.poll() is None, second.lines
        app.steer("release")
        assert first.finish() == (1, "", [FAILED])
        code, out, lines = second.finish()
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert code == 0, lines
    assert lines == [
        _waiting(pid),
        f"aiodaemon: pid {pid} stopped before it was ready; starting once it has exited",
    ]
    new = int(out)
    assert new != pid
    assert is_alive(new)
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_start_while_the_first_outlasts_its_own_start_timeout_starts_nothing(
    app: ControlApp,
) -> None:
    """Still starting after the second start's --start-timeout: exit 1, said, nothing started."""
    first, pid = _first_start(app, "wait")
    try:
        result = app.cli(*_start_args(app, "start", "--start-timeout", "0.5"))
        app.steer("release")
        assert first.finish()[:2] == (0, f"{pid}\n")
    finally:
        first.kill()
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        _waiting(pid),
        f"aiodaemon: pid {pid} still starting after 0.5 s; nothing started",
    ]
    assert len(app.records("starting")) == 1
