"""A daemon in its last steps, its pidfile already removed: `stop` waits for it, nothing lies.

The daemon removes its pidfile among the last things it gives back; its
process goes on for a moment (the interpreter's exit, `atexit` functions).
`stop` then said "not running", exit 0, while the process existed,
`reload` and `upgrade` said "not running", exit 7, and `status` said "not
running", exit 3. The program here holds that moment open (an `atexit`
function waiting for the test's go-ahead).
"""

from __future__ import annotations

import _socket
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon._prefork._exit_mark import exit_mark

from .security_support import User, arena, service_account
from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    has_line,
    is_alive,
    kill_quietly,
    program,
    python,
    read_pid,
    wait_for,
    wait_gone,
)

__all__ = ["arena", "service_account"]  # fixtures, re-exported for pytest


class Held:
    """A detached daemon of ``held_last_step.py``, held where ``where`` says once stopped."""

    def __init__(self, tmp_path: Path, where: str, user: User | None = None) -> None:
        self.pidfile = tmp_path / "d.pid"
        self.record, self.go = tmp_path / "record", tmp_path / "go"
        self.record.touch()
        options: dict[str, object] = {"detach": True, "pidfile": str(self.pidfile)}
        if user is not None:
            options["user"] = user.name
            os.chown(self.record, user.uid, user.gid)
        started = python(
            [program("held_last_step"), json.dumps(options), self.record, self.go, where]
        )
        assert started.returncode == 0, started.stderr
        self.pid = read_pid(self.pidfile)

    def stop_and_hold(self, *, emptied: bool = False) -> None:
        """SIGTERM it and wait until it is held, its pidfile gone (``emptied``: left empty)."""
        os.kill(self.pid, signal.SIGTERM)
        wait_for(lambda: has_line(self.record, "held"), what="the daemon held after its pidfile")
        if emptied:
            assert self.pidfile.read_text() == ""
        else:
            assert not self.pidfile.exists()
        assert is_alive(self.pid)

    def let_go(self) -> None:
        """Let it end, and wait until it has."""
        self.go.touch()
        try:
            wait_gone(self.pid)
        finally:
            kill_quietly(self.pid)


@pytest.fixture
def held_at_exit(tmp_path: Path) -> Iterator[Held]:
    """A daemon held in an ``atexit`` function; let go (or killed) at the end."""
    daemon = Held(tmp_path, "atexit")
    try:
        yield daemon
    finally:
        daemon.let_go()


def test_stop_waits_for_a_daemon_exiting_after_its_pidfile_is_gone(held_at_exit: Held) -> None:
    """`stop` says it waits, and returns 0 only once the process is gone."""
    held_at_exit.stop_and_hold()
    pidfile, pid = held_at_exit.pidfile, held_at_exit.pid
    with subprocess.Popen(
        [AIODAEMON, "stop", "--pidfile", pidfile],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as stop:
        try:
            assert stop.stderr is not None
            first = stop.stderr.readline()
            assert first == (
                f"aiodaemon: already stopping (pid {pid}, its pidfile {pidfile} gone as it"
                " exits); waiting\n"
            )
            assert stop.poll() is None
            assert is_alive(pid)
            held_at_exit.go.touch()
            out, err = stop.communicate(timeout=30)
            # Gone when `stop` returned: a zombie until its parent reaps it, at most.
            assert not is_alive(pid)
        finally:
            kill_quietly(stop.pid)
    assert (stop.returncode, out, err) == (0, "", f"aiodaemon: stopped (pid {pid})\n")


def test_reload_and_upgrade_of_a_daemon_exiting_refuse_it_as_stopping(held_at_exit: Held) -> None:
    """Neither says "not running" (7) of a process still exiting: exit 1, nothing sent."""
    held_at_exit.stop_and_hold()
    pidfile, pid = held_at_exit.pidfile, held_at_exit.pid
    said = (
        f"aiodaemon: pid {pid} is stopping (it has removed its pidfile {pidfile} and exits);"
        " nothing sent\n"
    )
    for command in ("reload", "upgrade"):
        result = aiodaemon_cli(command, "--pidfile", pidfile)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", said), command
    assert is_alive(pid)


def test_status_says_stopping_of_a_daemon_exiting_after_its_pidfile_is_gone(
    held_at_exit: Held,
) -> None:
    """Not "not running" (3) while the process still exits: `stopping`, exit 0, as `stop` waits."""
    held_at_exit.stop_and_hold()
    pidfile, pid = held_at_exit.pidfile, held_at_exit.pid
    result = aiodaemon_cli("status", "--pidfile", pidfile)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"stopping (pid {pid}, pidfile {pidfile} removed as it exits)\n",
        "",
    )
    result = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
    assert result.returncode == 0
    answer = json.loads(result.stdout)
    assert (answer["state"], answer["pid"]) == ("stopping", pid)
    assert is_alive(pid)
    held_at_exit.go.touch()
    wait_gone(pid)
    result = aiodaemon_cli("status", "--pidfile", pidfile)
    assert (result.returncode, result.stdout) == (3, f"not running (no pidfile {pidfile})\n")


def test_work_after_run_is_no_daemon_to_wait_for(tmp_path: Path) -> None:
    """The program goes on after `run()` (a report to upload): `stop` says "not running" at once."""
    daemon = Held(tmp_path, "after_run")
    try:
        daemon.stop_and_hold()
        result = aiodaemon_cli("status", "--pidfile", daemon.pidfile)
        assert (result.returncode, result.stdout) == (
            3,
            f"not running (no pidfile {daemon.pidfile})\n",
        )
        result = aiodaemon_cli("stop", "--pidfile", daemon.pidfile)
        assert (result.returncode, result.stderr) == (
            0,
            f"aiodaemon: not running (no pidfile {daemon.pidfile})\n",
        )
        assert is_alive(daemon.pid)
    finally:
        daemon.let_go()


@pytest.mark.root
def test_stop_waits_for_a_daemon_exiting_that_could_only_empty_its_pidfile(
    arena: Path, service_account: User
) -> None:
    """Dropped to its account in a root-owned directory, it empties the file: `stop` waits too.

    The file is left unlocked (a start may take it at once), and `stop`
    removes it once the daemon is gone, as after any stop.
    """
    daemon = Held(arena, "atexit", service_account)
    try:
        daemon.stop_and_hold(emptied=True)
        status = aiodaemon_cli("status", "--pidfile", daemon.pidfile)
        assert (status.returncode, status.stdout) == (
            0,
            f"stopping (pid {daemon.pid}, pidfile {daemon.pidfile} emptied as it exits)\n",
        )
        with subprocess.Popen(
            [AIODAEMON, "stop", "--pidfile", daemon.pidfile],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as stop:
            try:
                assert stop.stderr is not None
                assert stop.stderr.readline().startswith(
                    f"aiodaemon: already stopping (pid {daemon.pid}, its pidfile"
                )
                assert is_alive(daemon.pid)
                daemon.go.touch()
                _, err = stop.communicate(timeout=30)
                assert not is_alive(daemon.pid)
            finally:
                kill_quietly(stop.pid)
        control = Path(f"{daemon.pidfile}.ctl")
        assert (stop.returncode, err) == (
            0,
            f"aiodaemon: stopped (pid {daemon.pid}); removed pidfile {daemon.pidfile} and"
            f" control socket {control}, which the daemon could not remove\n",
        )
        assert not daemon.pidfile.exists()
        assert not control.exists()
    finally:
        daemon.let_go()


def test_a_name_taken_by_a_process_without_the_pidfile_is_not_believed(tmp_path: Path) -> None:
    """Anybody may listen on the exit mark's name: one that does not hold the pidfile is ignored."""
    pidfile = tmp_path / "d.pid"
    squatter = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        squatter.bind(exit_mark(str(pidfile)))
        squatter.listen()
        for command, code in (("stop", 0), ("reload", 7), ("upgrade", 7)):
            result = aiodaemon_cli(command, "--pidfile", pidfile)
            assert (result.returncode, result.stderr) == (
                code,
                f"aiodaemon: not running (no pidfile {pidfile})\n",
            ), command
        result = aiodaemon_cli("status", "--pidfile", pidfile)
        assert (result.returncode, result.stdout) == (3, f"not running (no pidfile {pidfile})\n")
    finally:
        squatter.close()
