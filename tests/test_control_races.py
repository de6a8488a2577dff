"""Control commands that overlap: each caller's exit status and message stay truthful."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon._prefork._control_protocol import MAX_WAITING

from .control_support import ControlApp, open_control_app, reloads_waiting
from .support import PROGRAMS, PYTHON, aiodaemon_cli, is_alive, kill_quietly, wait_for

#: What a reload is told while every waiting slot is taken.
BUSY = f"busy: {MAX_WAITING} control connections open"


@pytest.fixture
def full() -> Iterator[tuple[ControlApp, int]]:
    """A daemon whose 32 control slots are held by reloads waiting on a held reload hook."""
    with open_control_app() as app:
        pid = app.start()
        with reloads_waiting(app):
            yield app, pid


def test_reload_waiting_for_a_slot_of_a_daemon_killed_meanwhile_says_nothing_reloaded(
    full: tuple[ControlApp, int],
) -> None:
    """reload waiting for a control slot while its daemon is killed: exit 1, not "requested"."""
    app, pid = full
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BUSY), 30, "reload told the daemon is busy")
        kill_quietly(pid)
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 1, lines
    assert lines[-1] == f"aiodaemon: pid {pid} exited; nothing reloaded"


def test_reload_answered_by_a_daemon_killed_meanwhile_says_it_exited() -> None:
    """A reload whose daemon is killed mid-hook: "exited; nothing reloaded", exit 1.

    The connection drops a moment before the pidfd says the process is gone;
    the reload said "closed the control connection without an answer" then.
    """
    with open_control_app() as app:
        pid = app.start()
        app.steer("reload", "wait")
        reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
        try:
            wait_for(lambda: app.reload_runs() == ["wait"], 30, "the held reload hook")
            kill_quietly(pid)
            code, _, lines = reload.finish()
        finally:
            reload.kill()
    assert code == 1, lines
    assert lines[-1] == f"aiodaemon: pid {pid} exited; nothing reloaded", lines


def test_reload_waiting_for_a_slot_of_a_daemon_stopped_meanwhile_says_nothing_reloaded(
    full: tuple[ControlApp, int],
) -> None:
    """reload waiting for a control slot while its daemon stops gracefully: exit 1, no SIGHUP."""
    app, pid = full
    reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "60")
    try:
        wait_for(lambda: reload.said(BUSY), 30, "reload told the daemon is busy")
        stop = app.cli("stop", "--pidfile", app.pidfile)
        assert stop.returncode == 0, stop.stderr
        assert not is_alive(pid)
        code, _, lines = reload.finish()
    finally:
        reload.kill()
    assert code == 1, lines
    # Whichever it met: a slot during the shutdown, or the socket gone after it.
    assert lines[-1] in (
        f"aiodaemon: pid {pid} is stopping; nothing reloaded",
        f"aiodaemon: pid {pid} exited (its control socket is gone); nothing reloaded",
        f"aiodaemon: pid {pid} is stopping (its control socket is gone); nothing reloaded",
        # Gone by the time the control socket had failed it, before any SIGHUP.
        f"aiodaemon: pid {pid} exited; nothing reloaded",
    ), lines
    assert not any("SIGHUP" in line for line in lines), lines
    assert [r.get("signal") for r in app.records("signal received")] in ([], ["SIGTERM"])


def test_two_stops_of_a_daemon_whose_reload_waiters_fill_the_slots_stop_it_gracefully(
    full: tuple[ControlApp, int],
) -> None:
    """Two stops at once, 32 reloads waiting: asked over the socket, no forcing second SIGTERM."""
    app, pid = full
    app.steer("shutdown", "slow:0.5")
    stops = [app.watch("stop", "--pidfile", app.pidfile) for _ in range(2)]
    try:
        results = [stop.finish() for stop in stops]
    finally:
        for stop in stops:
            stop.kill()
    for code, _, lines in results:
        assert code == 0, lines
        assert lines[-1] == f"aiodaemon: stopped (pid {pid})", lines
        assert not any("SIGTERM" in line for line in lines), lines
    assert not is_alive(pid)
    # The shutdown hook ran to its end and the daemon left with 0, not forced out.
    assert app.records("signal received") == []
    assert app.records("forced exit") == []
    assert [r.get("status") for r in app.records("exit")] == [0]


def test_status_of_a_daemon_whose_reload_waiters_fill_the_slots_is_the_daemons(
    full: tuple[ControlApp, int],
) -> None:
    """32 reloads waiting: status is still answered by the daemon, "reloading", no warning."""
    app, pid = full
    result = app.cli("status", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"reloading (pid {pid}, pidfile {app.pidfile})"
    assert result.stderr == ""


class _RacedStart:
    """A lock holder whose pidfile appears only as a command first connects to its socket.

    What a command sees when a start races it: no pidfile when it reads it,
    then a daemon serving the control socket beside it, and by then a pidfile
    naming that daemon. Made deterministic: the test moves the holder's
    pidfile away and serves its control socket (tests/programs/control_holder.py
    lends it the holder's credentials), moving the file back at the first
    connection.
    """

    def __init__(self, directory: Path) -> None:
        self.pidfile = directory / "app.pid"
        self.away = directory / "app.pid.away"
        control = directory / "app.pid.ctl"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(control))
        self.holder = subprocess.Popen(
            [
                PYTHON,
                str(PROGRAMS / "control_holder.py"),
                self.pidfile,
                str(self.listener.fileno()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=[self.listener.fileno()],
        )
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline() == "ready\n"
        self.pid = self.holder.pid
        self.pidfile.rename(self.away)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                if self.away.exists():
                    self.away.rename(self.pidfile)
                line = conn.makefile("rb").readline()
                if not line:
                    continue  # a probe that sent nothing
                request = json.loads(line)
                answer: dict[str, object] = {"v": 1, "ok": True, "pid": self.pid}
                if request["cmd"] == "status":
                    answer.update(state="running", uptime=1.0, sockets={}, last_reload=None,
                                  version="0.1.0")  # fmt: skip
                elif request["cmd"] == "stop":
                    answer["already_stopping"] = False
                    # It removes its pidfile and exits, as a daemon asked to stop does.
                    self.pidfile.unlink()
                    assert self.holder.stdin is not None
                    self.holder.stdin.close()
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(10)
        self.holder.kill()
        self.holder.wait()
        for pipe in (self.holder.stdin, self.holder.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def raced() -> Iterator[_RacedStart]:
    """A _RacedStart in a short directory (a unix socket path has 108 bytes at most)."""
    directory = Path(tempfile.mkdtemp(prefix="aiodaemon-race-"))
    fake = _RacedStart(directory)
    try:
        yield fake
    finally:
        fake.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_start_racing_another_start_says_already_running_not_pidfile_removed(
    raced: _RacedStart,
) -> None:
    """start that read no pidfile, then met the racing start's daemon: plain "already running"."""
    result = aiodaemon_cli("start", "control_app:main", "--pidfile", raced.pidfile, cwd=PROGRAMS)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"aiodaemon: already running (pid {raced.pid}, pidfile {raced.pidfile})"
    ]


def test_status_racing_a_start_reports_it_without_a_pidfile_warning(raced: _RacedStart) -> None:
    """status that read no pidfile, then found the starting daemon: no "was removed" warning."""
    result = aiodaemon_cli("status", "--pidfile", raced.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"running (pid {raced.pid}, pidfile {raced.pidfile})"
    assert result.stderr == ""


def test_stop_racing_a_start_stops_it_without_a_pidfile_warning(raced: _RacedStart) -> None:
    """stop that read no pidfile, then found the starting daemon: stopped, nothing "removed"."""
    result = aiodaemon_cli("stop", "--pidfile", raced.pidfile)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"aiodaemon: stopped (pid {raced.pid})"]


@pytest.mark.parametrize(
    ("control", "remove_pidfile"),
    [([], False), (["--no-control"], False), ([], True)],
    ids=["control", "no-control", "pidfile-removed"],
)
def test_start_racing_a_stop_waits_for_the_exit_then_starts(
    control: list[str], remove_pidfile: bool
) -> None:
    """start while the daemon runs its shutdown: waits for the exit, starts, prints the new pid.

    Without a control socket the stopping mark tells; with the pidfile removed
    meanwhile, the daemon found over its control socket. In both start said
    "already running", exit 0, and a moment later nothing ran.
    """
    with open_control_app() as app:
        old = app.start(*control)
        app.steer("shutdown", "wait")
        stop = app.watch("stop", "--pidfile", app.pidfile)
        start = None
        try:
            wait_for(lambda: app.records("shutdown started"), 30, "the shutdown")
            if remove_pidfile:
                app.pidfile.unlink()
            start = app.watch("start", "control_app:main", "--pidfile", app.pidfile, *control,
                              "--log-file", app.log, "--shutdown-timeout", "10")  # fmt: skip
            waiting = f"aiodaemon: pid {old} is stopping; starting once it has exited"
            wait_for(lambda: start.said(waiting) or start.proc.poll() is not None, 30, "the start")
            assert start.proc.poll() is None, start.lines  # not "already running", exit 0
            (app.dir / "shutdown").unlink()  # the new daemon's shutdown is not held
            app.steer("shutdown-release")
            assert stop.finish()[0] == 0
            code, out, lines = start.finish()
        finally:
            stop.kill()
            if start is not None:
                start.kill()
        assert (code, lines) == (0, [waiting]), lines
        new = int(out)
        assert new != old
        assert is_alive(new)
        status = app.cli("status", "--pidfile", app.pidfile)
        assert status.stdout.splitlines()[0] == f"running (pid {new}, pidfile {app.pidfile})"


def test_start_racing_a_stop_that_outlasts_its_budget_starts_nothing() -> None:
    """The stopping daemon outlasts the new one's stop budget: exit 1, said, nothing started."""
    with open_control_app() as app:
        old = app.start()
        app.steer("shutdown", "wait")
        stop = app.watch("stop", "--pidfile", app.pidfile)
        try:
            wait_for(lambda: app.records("shutdown started"), 30, "the shutdown")
            result = app.cli("start", "control_app:main", "--pidfile", app.pidfile,
                             "--shutdown-timeout", "0.5")  # fmt: skip
            assert result.returncode == 1, result.stderr
            assert result.stdout == ""
            assert result.stderr.splitlines() == [
                f"aiodaemon: pid {old} is stopping; starting once it has exited",
                f"aiodaemon: pid {old} still stopping after 2.5 s; nothing started",
            ]
            assert len(app.records("starting")) == 1
        finally:
            app.steer("shutdown-release")
            stop.finish()
            stop.kill()


def test_start_meeting_a_daemon_in_its_last_steps_starts_once_it_is_gone() -> None:
    """The holder's control socket drops start's question (a daemon's last steps): start waits.

    A fake holder (tests/programs/control_holder.py) whose socket the test
    serves by dropping the connection, then ends; a real daemon starts then.
    """
    with open_control_app() as app:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(app.control))
        holder = subprocess.Popen(
            [PYTHON, str(PROGRAMS / "control_holder.py"), app.pidfile, str(listener.fileno())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=[listener.fileno()],
        )
        start = None
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "ready\n"
            start = app.watch("start", "control_app:main", "--pidfile", app.pidfile,
                              "--log-file", app.log, "--shutdown-timeout", "10")  # fmt: skip
            listener.settimeout(30)
            conn, _ = listener.accept()
            conn.close()  # dropped unanswered, as a control socket closing at exit does
            listener.close()
            assert holder.stdin is not None
            holder.stdin.close()  # the holder exits, leaving its pidfile and socket file
            holder.wait(30)
            code, out, lines = start.finish()
        finally:
            listener.close()
            holder.kill()
            holder.wait()
            if holder.stdout is not None:
                holder.stdout.close()
            if start is not None:
                start.kill()
        assert code == 0, lines
        assert lines == []
        assert is_alive(int(out))
        # Written by the log's own thread: the record may trail the launcher's exit.
        ready = wait_for(lambda: app.records("ready"), 10, "the ready record")
        assert [r["pid"] for r in ready] == [int(out)]


def test_two_stops_of_a_daemon_without_control_socket_send_one_sigterm() -> None:
    """Over signals alone, a stop while another one waits does not send the forcing SIGTERM."""
    with open_control_app() as app:
        pid = app.start("--no-control")
        app.steer("shutdown", "wait")
        first = app.watch("stop", "--pidfile", app.pidfile)
        second = None
        try:
            wait_for(lambda: app.records("shutdown started"), 30, "the first stop's SIGTERM")
            second = app.watch("stop", "--pidfile", app.pidfile)
            waiting = (
                f"aiodaemon: already stopping (pid {pid}; `aiodaemon stop` pid {first.proc.pid}"
            )
            wait_for(lambda: second.said(waiting), 30, "the second stop waiting")
            app.steer("shutdown-release")
            results = [first.finish(), second.finish()]
        finally:
            app.steer("shutdown-release")
            first.kill()
            if second is not None:
                second.kill()
        for code, _, lines in results:
            assert code == 0, lines
            assert lines[-1] == f"aiodaemon: stopped (pid {pid})"
        # One SIGTERM: the shutdown hooks ran to their end, exit 0, nothing forced.
        assert len(app.records("signal received")) == 1
        assert app.records("forced exit") == []
        assert [r.get("status") for r in app.records("exit")] == [0]
