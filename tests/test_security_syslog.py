"""A syslog socket path another user can plant (audit-verify F2): never connected to.

In a shared sticky directory the path of a ``syslog=`` socket may be taken by
another user's socket, or, while the real collector restarts, by a symlink to
one. The daemon checks the path at start and at every reconnect; the planting
user is real and listens on its socket, and must receive nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .security_support import (
    User,
    arena,
    as_user,
    fork_as,
    intruder,
    own_dir,
    records,
    running_daemon,
    service_account,
    shared_dir,
    start_daemon,
    stop_daemon,
    wait_child,
)
from .support import read_pid, wait_for
from .syslog_support import UnixCollector

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest


class Impostor:
    """What the planting user's socket received, known once it has let go."""

    def __init__(self) -> None:
        self.received = -1


@contextlib.contextmanager
def impostor(user: User, path: Path) -> Iterator[Impostor]:
    """``user`` binds a datagram socket at ``path`` (mode 0666) and counts the bytes it gets."""
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()

    def listen() -> None:
        os.close(ready_r)
        os.close(release_w)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o666)
        os.write(ready_w, b"!")
        received = 0
        while True:
            readable, _, _ = select.select([sock.fileno(), release_r], [], [])
            if sock.fileno() in readable:
                received += len(sock.recv(70000))
            elif release_r in readable:
                break
        os.write(ready_w, f"{received}\n".encode())

    result = Impostor()
    child = fork_as(user, listen)
    os.close(ready_w)
    os.close(release_r)
    try:
        readable, _, _ = select.select([ready_r], [], [], 30)
        assert readable, "the impostor's socket never appeared"
        assert os.read(ready_r, 1) == b"!", "the impostor failed"
        yield result
    finally:
        os.close(release_w)
        wait_child(child)
        result.received = int(os.read(ready_r, 64) or b"-1")
        os.close(ready_r)


def _refusal(user: User) -> str:
    return (
        f"is owned by uid {user.uid} (another user) in a shared sticky directory; "
        "refusing to use it"
    )


def _start_is_refused(arena: Path, intruder: User, pub: Path, reason: str) -> None:
    """A start with ``syslog=`` an intruder's socket in ``pub``: exit 1, one line ending
    in ``reason``, and the socket receives nothing."""
    path, pidfile = pub / "syslog.sock", arena / "app.pid"
    with impostor(intruder, path) as planted:
        result = start_daemon({"detach": True, "pidfile": str(pidfile), "syslog": str(path)})
        if result.returncode == 0:
            stop_daemon(read_pid(pidfile))
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.splitlines()
        assert line.endswith(f"cannot connect to syslog {path}: {reason}"), line
    assert planted.received == 0


@pytest.mark.parametrize("mode", [0o1777, 0o1770], ids=["world", "group"])
def test_a_planted_syslog_socket_is_refused_at_start(
    arena: Path, intruder: User, mode: int
) -> None:
    """Another user's socket at the syslog path: the start fails, it receives nothing."""
    pub = shared_dir(arena / "pub", mode, intruder.gid if mode == 0o1770 else 0)
    _start_is_refused(arena, intruder, pub, _refusal(intruder))


def test_a_syslog_socket_in_a_world_writable_directory_is_refused_at_start(
    arena: Path, intruder: User
) -> None:
    """Without the sticky bit anyone may replace the socket: refused, the planter gets nothing."""
    pub = shared_dir(arena / "pub", 0o777)
    reason = f"directory is world-writable without the sticky bit: {pub}"
    _start_is_refused(arena, intruder, pub, reason)


def test_a_planted_symlink_at_the_syslog_path_is_refused_at_start(
    arena: Path, intruder: User
) -> None:
    """A symlink another user put at the syslog path, to its socket: refused, nothing sent."""
    pub = shared_dir(arena / "pub", 0o1777)
    den = own_dir(arena / "den", intruder)
    path, pidfile = pub / "syslog.sock", arena / "app.pid"
    with impostor(intruder, den / "s.sock") as planted:
        as_user(intruder, lambda: path.symlink_to(den / "s.sock"))
        result = start_daemon({"detach": True, "pidfile": str(pidfile), "syslog": str(path)})
        if result.returncode == 0:
            stop_daemon(read_pid(pidfile))
        assert result.returncode == 1, result.stderr
        [line] = result.stderr.splitlines()
        assert line.endswith(
            f"{path}: is a symlink that others could have placed; refusing to follow it"
        ), line
    assert planted.received == 0


@pytest.mark.parametrize(
    ("plant", "mode"),
    [("socket", 0o1777), ("symlink", 0o1777), ("socket", 0o777)],
    ids=["socket", "symlink", "socket-unsticky"],
)
def test_a_socket_planted_while_the_collector_restarts_gets_nothing(
    arena: Path, intruder: User, plant: str, mode: int
) -> None:
    """Collector down, another user plants: the reconnect is refused and said, records wait.

    ``socket-unsticky``: the directory lost its sticky bit since the start.
    """
    pub = shared_dir(arena / "pub", 0o1777)
    den = own_dir(arena / "den", intruder)
    path, log = pub / "syslog.sock", arena / "app.log"
    collector = UnixCollector(path)
    collector.start()
    options = {"pidfile": str(arena / "app.pid"), "syslog": str(path), "log_file": str(log)}
    with contextlib.closing(collector), running_daemon(options):
        wait_for(lambda: len(collector.ticks()) > 2, what="ticks at the collector")
        collector.stop()
        pub.chmod(mode)
        with impostor(intruder, den / "s.sock" if plant == "symlink" else path) as planted:
            if plant == "symlink":
                as_user(intruder, lambda: path.symlink_to(den / "s.sock"))

            def refused() -> dict[str, Any] | None:
                for record in records(log):
                    if record["event"] == "syslog socket refused":
                        return record
                return None

            record = wait_for(refused, what="the refused reconnect in the log file")
            assert record["level"] == "error"
            assert str(path) in str(record["error"]), record
            # Records keep coming while they wait for the collector.
            seen = _last_tick(log)
            wait_for(lambda: _last_tick(log) > seen + 5, what="ticks while refused")
            path.unlink()  # the real collector comes back and replaces what it finds
        pub.chmod(0o1777)
        assert planted.received == 0
        collector.start()
        seen = _last_tick(log)
        wait_for(lambda: max(collector.ticks()) > seen, what="the waiting ticks at the collector")
        ticks = collector.ticks()
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "a tick was lost"
    assert not [r for r in records(log) if r["event"] == "syslog records lost"]


def test_a_trusted_symlink_like_dev_log_is_followed(arena: Path) -> None:
    """/dev/log -> /run/systemd/journal/dev-log: a root symlink in a root directory works."""
    dev, run = own_dir(arena / "dev", _root()), own_dir(arena / "run", _root())
    collector = UnixCollector(run / "dev-log")
    collector.start()
    (dev / "log").symlink_to(run / "dev-log")
    with (
        contextlib.closing(collector),
        running_daemon({"pidfile": str(arena / "app.pid"), "syslog": str(dev / "log")}),
    ):
        wait_for(lambda: len(collector.ticks()) > 2, what="ticks through the symlink")


def test_the_daemons_own_users_socket_is_trusted(arena: Path, service_account: User) -> None:
    """In a shared sticky directory, a socket of the daemon's ``user=`` is used."""
    pub = shared_dir(arena / "pub", 0o1777)
    path = pub / "syslog.sock"
    with impostor(service_account, path) as own:
        options = {"pidfile": str(arena / "app.pid"), "syslog": str(path)}
        with running_daemon({**options, "user": service_account.name}):
            pass
    assert own.received > 0


def _last_tick(log: Path) -> int:
    return max((int(r["n"]) for r in records(log) if r["event"] == "tick"), default=-1)


def _root() -> User:
    return User("root", 0, 0)
