"""Every control slot taken (32 waiting reloads, hung clients): the commands stay truthful."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._cli._control_client import ControlBusy, ask_patiently
from aiodaemon._prefork._control_protocol import MAX_CONNECTIONS, MAX_WAITING

from .control_support import ControlApp, reload_request, reloads_waiting
from .support import wait_for

#: The control server's cap on connections waiting for a result.
SLOTS = MAX_WAITING
BUSY = f"busy: {SLOTS} control connections open"
#: What a connection past every slot (MAX_CONNECTIONS) is told.
JAMMED = f"busy: {MAX_CONNECTIONS} control connections open"
#: Times a command is run while the slots are jammed before the machine is called too slow.
_JAM_TRIES = 3


def _is_busy(app: ControlApp) -> bool:
    """Whether one more connection is told "busy" (else it was served: it leaves at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        probe.connect(str(app.control))
        try:
            answer = probe.recv(4096)
        except TimeoutError:
            return False
    return b'"busy' in answer


def _assert_reloaded(conn: socket.socket) -> None:
    """Read the answer a reload client gets once its run ends: a successful reload."""
    conn.settimeout(30)
    with conn.makefile("rb") as answers:
        answer = json.loads(answers.readline())
    assert answer["ok"] is True, answer
    assert answer["reload"]["ok"] is True, answer


@pytest.fixture
def full(control_app: ControlApp) -> Iterator[tuple[ControlApp, int]]:
    """A daemon whose 32 waiting slots are held by reloads waiting on a held hook."""
    app = control_app
    pid = app.start()
    with reloads_waiting(app) as held:
        yield app, pid
        # The slots were held all along: each waiter gets its answer once released.
        app.steer("reload-release")
        for conn in held:
            _assert_reloaded(conn)


@contextlib.contextmanager
def _jammed(app: ControlApp) -> Iterator[Callable[[], bool]]:
    """The slots left beside the 32 waiters held too, by clients that never send a request.

    Yields whether they are all still held. The daemon drops each after the
    request timeout (5 s): a command slower than that (a loaded machine) met a
    free slot, and its run proves nothing (see :func:`_cli_jammed`).
    """
    held = []
    try:
        for _ in range(MAX_CONNECTIONS - SLOTS):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(app.control))
            held.append(conn)
        wait_for(lambda: _is_busy(app), 5, "every control slot taken")
        yield lambda: all(map(_still_open, held))
    finally:
        for conn in held:
            conn.close()


def _still_open(conn: socket.socket) -> bool:
    """Whether the daemon has neither answered nor closed ``conn`` (it would drop it)."""
    try:
        conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


def _cli_jammed(app: ControlApp, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` run while every control slot is taken from its start to its end."""
    for _ in range(_JAM_TRIES):
        with _jammed(app) as still_held:
            result = app.cli(*args)
            if still_held():
                return result
    pytest.fail(f"the control slots could not be held through one command in {_JAM_TRIES} tries")


def test_status_of_a_daemon_with_every_control_slot_taken_says_running(
    full: tuple[ControlApp, int],
) -> None:
    """status exits 0 "running (pid N)" from the pidfile, warning that the socket stayed busy."""
    app, pid = full
    result = _cli_jammed(app, "status", "--pidfile", app.pidfile, "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"running (pid {pid}, pidfile {app.pidfile})"]
    assert result.stderr.splitlines() == [
        f"aiodaemon: warning: control socket {app.control} stayed {JAMMED}; status from the pidfile"
    ]


def test_status_json_of_a_daemon_with_every_control_slot_taken_says_running(
    full: tuple[ControlApp, int],
) -> None:
    """status --json prints the pidfile's "running" object, the warning on stderr."""
    app, pid = full
    result = _cli_jammed(app, "status", "--pidfile", app.pidfile, "--json", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["state"], answer["pid"]) == ("running", pid)
    assert JAMMED in result.stderr


def test_reload_waits_for_a_control_slot_and_reloads(full: tuple[ControlApp, int]) -> None:
    """reload says it waits for a slot, then reloads once the 32 waiters are answered."""
    app, pid = full
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BUSY), 30, "reload told the daemon is busy")
        assert reload.proc.poll() is None, reload.lines  # still trying, nothing given up
        assert app.reload_runs() == ["wait"]
        app.steer("reload-release")
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 0, lines
    assert lines == [
        f"aiodaemon: {BUSY} (pid {pid}); trying again for up to 60 s",
        f"aiodaemon: reloaded (pid {pid})",
    ]


def _reload_and_upgrade_refused(app: ControlApp, pid: int, why: str) -> None:
    """``reload`` and ``upgrade --timeout 1``: ``why`` twice (waiting, then giving up), exit 1."""
    result = app.cli("reload", "--pidfile", app.pidfile, "--timeout", "1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"aiodaemon: {why} (pid {pid}); trying again for up to 1 s",
        f"aiodaemon: {why} (pid {pid}); nothing reloaded",
    ]
    result = app.cli("upgrade", "--pidfile", app.pidfile, "--timeout", "1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"aiodaemon: {why} (pid {pid}); trying again for up to 1 s",
        f"aiodaemon: upgrade failed: {why} (pid {pid}); nothing started",
    ]


def test_reload_and_upgrade_busy_for_their_whole_timeout_start_nothing(
    full: tuple[ControlApp, int],
) -> None:
    """Busy for all of --timeout: reload and upgrade exit 1 saying nothing was done."""
    app, pid = full
    _reload_and_upgrade_refused(app, pid, BUSY)
    # Neither asked for anything: the one reload run is the held one, no upgrade began.
    assert app.reload_runs() == ["wait"]
    assert app.records("upgrade started") == []


#: What a command is told when the control socket's listen backlog refuses it.
BACKLOG = "busy: the control socket's backlog is full"


@pytest.fixture
def backlogged(control_app: ControlApp) -> Iterator[tuple[ControlApp, int]]:
    """A daemon whose loop a reload hook holds up, its control socket's backlog full.

    What sync code that forgets to yield, with clients piling up, leaves: the
    kernel queues connections nobody accepts until the backlog refuses more.
    Leaving releases the loop.
    """
    app = control_app
    pid = app.start()
    app.steer("reload", "block-wait")
    held: list[socket.socket] = []
    try:
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: app.reload_runs() == ["block-wait"], 30, "the loop held up")
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.setblocking(False)
            try:
                conn.connect(str(app.control))
            except BlockingIOError:
                conn.close()
                break
            held.append(conn)
            assert len(held) < 10_000, "the backlog never filled"
        yield app, pid
    finally:
        app.steer("reload-release")
        for conn in held:
            conn.close()


def test_a_full_backlog_is_busy_for_reload_upgrade_and_status(
    backlogged: tuple[ControlApp, int],
) -> None:
    """Refused by the backlog for all of --timeout: "busy", not "still reloading"; nothing done."""
    app, pid = backlogged
    _reload_and_upgrade_refused(app, pid, BACKLOG)
    result = app.cli("status", "--pidfile", app.pidfile, "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"running (pid {pid}, pidfile {app.pidfile})"]
    assert result.stderr.splitlines() == [
        f"aiodaemon: warning: control socket {app.control} stayed {BACKLOG}; "
        "status from the pidfile"
    ]
    assert app.reload_runs() == ["block-wait"]


def test_reload_waits_out_a_full_backlog_and_reloads(
    backlogged: tuple[ControlApp, int],
) -> None:
    """The loop freed within --timeout: the reload it waited for runs, exit 0."""
    app, pid = backlogged
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BACKLOG), 30, "reload told the backlog is full")
        assert reload.proc.poll() is None, reload.lines  # still trying, nothing given up
        app.steer("reload-release")
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 0, lines
    assert lines == [
        f"aiodaemon: {BACKLOG} (pid {pid}); trying again for up to 60 s",
        f"aiodaemon: reloaded (pid {pid})",
    ]
    assert app.reload_runs() == ["block-wait", "block-wait"]


def test_status_of_a_busy_daemon_whose_pidfile_was_removed_says_running(
    full: tuple[ControlApp, int],
) -> None:
    """Pidfile removed and every slot taken: still "running", found as its socket's server."""
    app, pid = full
    app.pidfile.unlink()
    result = _cli_jammed(app, "status", "--pidfile", app.pidfile, "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"running (pid {pid}, serving {app.control})"]
    assert result.stderr.splitlines() == [
        f"aiodaemon: warning: pidfile {app.pidfile} was removed, but pid {pid} runs on "
        f"and serves {app.control}, which stayed busy"
    ]
    # Found the same way once the slots are free: stopped, nothing left behind.
    app.steer("reload-release")
    result = app.cli("stop", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert not app.control.exists()


def test_no_try_begins_once_the_patience_is_over() -> None:
    """Told "busy" until the end: the refusal is reported, no last try with no time left.

    The pause before a try could run to the end of the patience; the try made
    then had ~0 s and failed as "no answer within 0.001 s" (seen on a loaded
    machine), hiding that the daemon had said it was busy.
    """
    tries: list[float] = []

    def ask_once() -> dict[str, Any]:
        tries.append(time.monotonic())
        return {"ok": False, "error": JAMMED, "transient": True}

    until = time.monotonic() + 0.3
    with pytest.raises(ControlBusy, match=JAMMED):
        ask_patiently(ask_once, until=until)
    assert len(tries) >= 2
    assert max(tries) < until


def _reload_is_taken_in(app: ControlApp) -> bool:
    """Whether a reload asked now waits for its run (logged as queued), else told "busy".

    Not "no answer within a while": a daemon slow to say "busy" on a loaded
    machine would pass for one that took the request in.
    """
    queued = len(app.records("reload queued"))
    with reload_request(app) as probe:
        probe.setblocking(False)

        def verdict() -> bytes | None:
            if len(app.records("reload queued")) > queued:
                return b"queued"
            try:
                return probe.recv(4096) or b"(closed unanswered)"
            except BlockingIOError:
                return None

        answer = wait_for(verdict, 30, "the reload queued or refused")
    if answer == b"queued":
        return True
    assert BUSY in answer.decode(), answer
    return False


def test_reload_clients_that_hang_up_give_their_slots_back(control_app: ControlApp) -> None:
    """32 clients waiting for a held reload close their sockets: the next reload is taken in.

    One that only ended its writing half still waits, and gets its answer.
    """
    app = control_app
    app.start()
    app.steer("reload", "wait")
    half_closed = reload_request(app)
    half_closed.shutdown(socket.SHUT_WR)
    gone = [reload_request(app) for _ in range(SLOTS - 1)]
    try:
        wait_for(lambda: app.reload_runs() == ["wait"], 30, "the held reload hook")
        wait_for(lambda: len(app.records("reload queued")) >= SLOTS - 1, 30, "32 waiters")
        assert not _reload_is_taken_in(app)
        for conn in gone:
            conn.close()
        wait_for(lambda: _reload_is_taken_in(app), 10, "a waiting slot given back")
        app.steer("reload-release")
        _assert_reloaded(half_closed)
    finally:
        app.steer("reload-release")
        half_closed.close()
        for conn in gone:
            conn.close()
