"""Another user squatting the abstract names of ``stop``'s claim and of a stopping mark is ignored.

Over signals alone, the first ``stop`` claims the daemon's SIGTERM by binding
an abstract unix socket named after the daemon's pid and start time; the
others wait instead of forcing the exit. No file mode guards an abstract
name: anyone may bind it first. A ``stop`` believes a claim only when
``SO_PEERCRED`` says root or its own uid holds it; a stranger's listener
there must neither keep root's ``stop`` from sending SIGTERM nor make it say
another ``stop`` did. Nor may a stopping mark it listens on, from a process
that had the daemon's pid before pids came round, make root's commands take
the running daemon for a stopping one.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon._prefork._procfs import signal_claim, stat_field

from .security_support import (
    User,
    arena,
    fork_as,
    intruder,
    report_in_new_pid_namespace,
    wait_child,
)
from .support import (
    PYTHON,
    REPO,
    aiodaemon_cli,
    kill_quietly,
    program,
    python,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

TARGET = "tests.programs.security_daemon:main"
RECYCLED_MARK = REPO / "tests" / "programs" / "recycled_mark.py"


def cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` as root, from the repository, as text."""
    return aiodaemon_cli(*args, cwd=REPO, timeout=60)


def _claim_name(pid: int) -> str:
    name = signal_claim("stop", pid)
    assert name is not None
    return name


def test_a_strangers_claim_does_not_keep_roots_stop_from_sigterm(
    arena: Path, intruder: User
) -> None:
    """root's stop sends SIGTERM itself (0, 'stopped'), never 'already stopping', at once."""
    pidfile = arena / "app.pid"
    started = cli("start", TARGET, "--pidfile", pidfile, "--no-control")
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    name = _claim_name(pid)
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()

    def squat() -> None:
        os.close(ready_r)
        os.close(release_w)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(name)
        sock.listen(8)
        os.write(ready_w, b"!")
        os.read(release_r, 1)  # EOF when the test closes its end

    squatter = fork_as(intruder, squat)
    os.close(ready_w)
    os.close(release_r)
    try:
        readable, _, _ = select.select([ready_r], [], [], 30)
        assert readable, "the intruder never bound the name"
        assert os.read(ready_r, 1) == b"!", "the intruder's bind failed"
        # Its own SIGTERM, not a wait for another stop's cut short by SIGKILL
        # at 20 s: that one would also say "sending SIGKILL".
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "20")
    finally:
        os.close(ready_r)
        os.close(release_w)
        wait_child(squatter)
        kill_quietly(pid)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr == f"aiodaemon: stopped (pid {pid})\n"
    assert "already stopping" not in stop.stderr
    wait_gone(pid, 5)


def test_a_strangers_mark_from_the_daemons_recycled_pid_is_not_believed(
    arena: Path, intruder: User
) -> None:
    """status says running, reload sends SIGHUP, stop its SIGTERM (exit 0), never 'stopping'.

    SO_PEERCRED names the process that called listen(): another user's, which
    had the daemon's pid before pids came round (a fork loop; here
    ``ns_last_pid`` in a new pid namespace), its socket kept by a child.
    """
    report = report_in_new_pid_namespace(RECYCLED_MARK, intruder.name, str(arena), timeout=120)
    pid = report["daemon"]
    assert pid == report["squatter"]  # the number came round to root's daemon
    pidfile = arena / "app.pid"
    assert report["status"] == [0, f"running (pid {pid}, pidfile {pidfile})\n"]
    assert report["reload"][0] == 0, report["reload"]
    assert "stopping" not in report["reload"][1]
    assert report["stop"] == [0, f"aiodaemon: stopped (pid {pid})\n"]
    assert report["exit"] == 0  # its graceful shutdown, not the SIGKILL


def test_a_claim_made_in_another_pid_namespace_is_not_this_daemons(arena: Path) -> None:
    """root's stop sends SIGTERM itself (0, 'stopped') though root's claim of those numbers exists.

    Abstract names are shared by the pid namespaces of a network namespace:
    two daemons there may both be pid 2, started in the same clock tick (two
    ``unshare --pid`` runs, containers sharing the host's network). A ``stop``
    in the other namespace claims its own daemon's SIGTERM under the same
    numbers; ours took it for its own and waited for a SIGTERM nobody sent.
    """
    pidfile = arena / "app.pid"
    started = cli("start", TARGET, "--pidfile", pidfile, "--no-control")
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        with _bound_in_another_pid_namespace("claim", pid, stat_field(pid, 19)):
            stop = cli("stop", "--pidfile", pidfile, "--timeout", "20")
    finally:
        kill_quietly(pid)
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr == f"aiodaemon: stopped (pid {pid})\n"
    wait_gone(pid, 5)


def test_a_stopping_mark_of_another_pid_namespace_leaves_ours_free(tmp_path: Path) -> None:
    """A daemon whose pid another namespace's stopping daemon also has is 'stopping' as it stops.

    Its mark's name was taken there: it could not mark its stop, and
    ``status`` said ``running`` through its whole shutdown.
    """
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release"
    # Without a control socket: status reads the stopping mark.
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "listen": {"http": "127.0.0.1:0"},
        "control": False,
    }
    started = python([program("held_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        with _bound_in_another_pid_namespace("stopping", pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(
                lambda: any(r["event"] == "stopped accepting" for r in read_json_lines(log)),
                what="the shutdown to begin",
            )
            status = cli("status", "--pidfile", pidfile)
    finally:
        release.touch()
        wait_gone(pid)
    assert (status.returncode, status.stdout) == (0, f"stopping (pid {pid}, pidfile {pidfile})\n")


@contextlib.contextmanager
def _bound_in_another_pid_namespace(kind: str, *numbers: int | None) -> Iterator[None]:
    """A process of a new pid namespace listens on the name it gives ``kind`` of ``numbers``.

    As a process there would for its own daemon with the same pid (and start
    time): a stop's claim, a stopping daemon's mark.
    """
    other = subprocess.Popen(
        # --kill-child: the name's holder ends with unshare, killed below.
        [require_tool("unshare"), "--pid", "--fork", "--kill-child", PYTHON, "-c",
         _OTHER_NAMESPACES_NAME, kind, *map(str, numbers)],
        cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert other.stdout is not None
    try:
        assert other.stdout.readline() == "bound\n"
        yield
    finally:
        other.kill()
        other.wait()
        other.stdout.close()


# Argv: "claim" PID TICKS (a stop's claim on a SIGTERM), or "stopping" PID (a daemon's mark).
_OTHER_NAMESPACES_NAME = """
import socket, sys, time
from aiodaemon._prefork._pidfile import stopping_mark
from aiodaemon._prefork._procfs import claim_name
numbers = [int(n) for n in sys.argv[2:]]
name = claim_name("stop", *numbers) if sys.argv[1] == "claim" else stopping_mark(*numbers)
holder = socket.socket(socket.AF_UNIX)
holder.bind(name)
holder.listen()
print("bound", flush=True)
time.sleep(600)
"""
