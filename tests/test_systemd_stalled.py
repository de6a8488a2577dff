"""A service manager that does not read its notify socket: the daemon serves on, nothing is lost.

The test is the manager: it binds the notify socket, fills its queue with
datagrams of its own (what a busy PID 1 leaves unread) and reads nothing for
a while. The daemon must keep answering on its port and its health endpoint
meanwhile, and the manager must hear what it needs, in order, once it reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import read_json_lines, wait_for
from .test_systemd import Datagram, NotifyReceiver, _notifying


class Manager(NotifyReceiver):
    """A notify socket on a path, read only when the test says so."""

    def __init__(self, address: str) -> None:
        """Bind at ``address``."""
        super().__init__(address)
        self.senders: list[socket.socket] = []

    def fill(self) -> None:
        """Fill the queue with ``FILLER=n`` datagrams of the test's own.

        A sender's own buffer may run out before the receiver's queue does (512
        datagrams on systemd hosts): then a fresh sender goes on, until one can
        send nothing at all.
        """
        count = 0
        while True:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.senders.append(sender)
            sender.setblocking(False)
            sender.connect(self.env_value)
            sent = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sender.send(f"FILLER={count}".encode())
                    count += 1
                    sent += 1
            if not sent:
                return

    def close(self) -> None:
        """Close the socket and the senders."""
        for sender in self.senders:
            sender.close()
        super().close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    """A notify socket on a path, read only when the test says so."""
    recv = Manager(str(tmp_path / "notify.sock"))
    yield recv
    recv.close()


def read_fillers(manager: Manager) -> Datagram:
    """Read the test's own datagrams; the first of the daemon's after them."""
    while True:
        datagram = manager.receive()
        if not datagram.lines[0].startswith("FILLER="):
            return datagram


@contextlib.contextmanager
def stalled_daemon(
    manager: Manager, tmp_path: Path, loop: str = "uvloop", **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The echo daemon under ``manager`` on ``loop``; killed if still running at the end."""
    log, health = tmp_path / "log.jsonl", tmp_path / "health.sock"
    with _notifying(manager, "systemd_stalled_manager", log, health, loop, **env) as proc:
        yield proc


def events(tmp_path: Path) -> list[dict[str, object]]:
    """The daemon's log records so far."""
    log = tmp_path / "log.jsonl"
    return read_json_lines(log) if log.exists() else []


def wait_event(tmp_path: Path, event: str, count: int = 1) -> dict[str, object]:
    """The ``count``-th record of ``event``, once logged (30 s at most)."""

    def found() -> dict[str, object] | None:
        matching = [r for r in events(tmp_path) if r["event"] == event]
        return matching[count - 1] if len(matching) >= count else None

    return wait_for(found, 30.0, f"{count}x {event!r}")


def echo(tmp_path: Path) -> bytes:
    """One line sent to the daemon's echo port, and its answer (30 s at most)."""
    sockets = wait_event(tmp_path, "starting")["sockets"]
    assert isinstance(sockets, dict)
    host, _, port = str(sockets["echo"]).rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"hi\n")
        return conn.makefile("rb").readline()


def livez(tmp_path: Path) -> bytes:
    """The status line of ``GET /livez`` on the daemon's health socket (30 s at most)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(tmp_path / "health.sock"))
        conn.sendall(b"GET /livez HTTP/1.1\r\nHost: daemon\r\nConnection: close\r\n\r\n")
        return conn.makefile("rb").readline()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_reloads_while_the_manager_reads_nothing_leave_the_daemon_serving(
    manager: Manager, tmp_path: Path, loop: str
) -> None:
    """Two reloads into a full queue: port and /livez answer; then the last reload's pair comes."""
    with stalled_daemon(manager, tmp_path, loop) as proc:
        manager.receive_until("READY=1", timeout=30)
        manager.fill()
        os.kill(proc.pid, signal.SIGHUP)
        wait_event(tmp_path, "reload finished")
        second_hup_usec = time.monotonic_ns() // 1000
        os.kill(proc.pid, signal.SIGHUP)
        wait_event(tmp_path, "reload finished", 2)
        # The manager has read nothing since the queue filled: a loop that
        # waited for it to make room could answer neither.
        assert echo(tmp_path) == b"hi\n"
        assert livez(tmp_path).startswith(b"HTTP/1.1 200")
        assert [r["held"] for r in events(tmp_path) if r["event"] == "sd_notify waiting"] == [
            "RELOADING"
        ]
        # The manager reads again: what it needs comes, in order.
        reloading = read_fillers(manager)
        assert reloading.pid == proc.pid
        assert reloading.lines[0] == "RELOADING=1"
        # The first reload began and ended unheard: the second one's stamp is
        # after the SIGHUP of each, so notify-reload sees both asked-for reloads done.
        assert int(reloading.fields["MONOTONIC_USEC"]) >= second_hup_usec
        ready = manager.receive()
        assert ready.lines == ["READY=1", f"MAINPID={proc.pid}", "STATUS=running"]
        caught_up = wait_event(tmp_path, "sd_notify caught up")
        assert (caught_up["sent"], caught_up["merged"], caught_up["dropped"]) == (2, 2, 0)
        os.kill(proc.pid, signal.SIGTERM)
        assert manager.receive().lines == ["STOPPING=1", "STATUS=stopping"]
        assert proc.wait(timeout=30) == 0
    assert [r["event"] for r in events(tmp_path)].count("sd_notify waiting") == 1


def test_ready_into_a_full_queue_waits_for_the_manager_with_one_watchdog_ping(
    manager: Manager, tmp_path: Path
) -> None:
    """A start with the queue full: serving, READY=1 held, not lost; one WATCHDOG=1 before it."""
    manager.fill()
    with stalled_daemon(manager, tmp_path, WATCHDOG_USEC="100000") as proc:
        wait_event(tmp_path, "ready")
        assert echo(tmp_path) == b"hi\n"
        assert livez(tmp_path).startswith(b"HTTP/1.1 200")
        held = [read_fillers(manager)]
        while "READY=1" not in held[-1].lines:
            held.append(manager.receive())
        # Every ping while READY=1 waited was one: the manager hears "alive" once.
        assert [d.lines for d in held] == [
            ["WATCHDOG=1"],
            ["READY=1", f"MAINPID={proc.pid}", "STATUS=running"],
        ]
        assert {d.pid for d in held} == {proc.pid}
        os.kill(proc.pid, signal.SIGTERM)
        manager.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0


def test_a_stop_the_manager_never_hears_is_logged_lost_and_the_exit_is_clean(
    manager: Manager, tmp_path: Path
) -> None:
    """The queue stays full to the end: exit 0 within the budget, an error record names STOPPING."""
    with stalled_daemon(manager, tmp_path) as proc:
        manager.receive_until("READY=1", timeout=30)
        manager.fill()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    lost = [r for r in events(tmp_path) if r["event"] == "sd_notify messages lost"]
    assert [(r["level"], r["lost"]) for r in lost] == [("error", ["STOPPING"])]
    assert events(tmp_path)[-1]["event"] == "exit"
