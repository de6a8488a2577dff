"""A daemon out of descriptors at ``accept()``: no storm, and it serves again once some free up."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
from contextlib import ExitStack
from pathlib import Path

import pytest

from .support import open_fds, program, python, read_json_lines, wait_for, wait_gone

#: The detail asyncio's loop gives an accept() that failed for want of resources.
EXHAUSTED = "socket.accept() out of system resource"
#: Connections the daemon holds once its limit is lowered: they take every free descriptor.
HELD = 4


def exhausted_records(log: Path) -> int:
    """How many records so far say that accept() ran out of resources."""
    return sum(record.get("detail") == EXHAUSTED for record in read_json_lines(log))


def connect(address: tuple[str, int]) -> socket.socket:
    """A client of the daemon's "http" socket."""
    return socket.create_connection(address, timeout=10)


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
def test_a_daemon_out_of_descriptors_serves_again_once_a_connection_closes(
    tmp_path: Path, uvloop: bool
) -> None:
    """At EMFILE a client waits (asyncio: one error record a second) or is closed (uvloop)."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "listen": {"http": "127.0.0.1:0"},
        "uvloop": uvloop,
    }
    started = python([program("accept_limit"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        starting = wait_for(
            lambda: [r for r in read_json_lines(log) if r["event"] == "starting"],
            what="the starting record",
        )
        assert starting[0]["loop"] == ("uvloop" if uvloop else "asyncio")
        host, port = str(starting[0]["sockets"]["http"]).rsplit(":", 1)  # type: ignore[index]
        address = (host, int(port))
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        with ExitStack() as stack:
            # Served by main: the daemon's start is over, its readiness pipe closed.
            held = [stack.enter_context(connect(address))]
            assert held[0].recv(16) == b"ok\n"
            used = open_fds(pid)
            # Room for HELD more connections and no more (gaps below the highest fd count).
            limit = max(used) + 1 + HELD
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
            held += [stack.enter_context(connect(address)) for _ in range(limit - len(used))]
            for client in held[1:]:
                assert client.recv(16) == b"ok\n"
            waiting = stack.enter_context(connect(address))
            if uvloop:
                # libuv accepts it on a spare descriptor and closes it: the client knows.
                assert waiting.recv(16) == b""
            else:
                wait_for(lambda: exhausted_records(log) >= 2, what="the retry a second later")
                # One record per try, not one per place in the 4,096-connection backlog.
                assert exhausted_records(log) <= 10
                held.pop().close()
                assert waiting.recv(16) == b"ok\n"
            for client in held:
                client.close()
            wait_for(lambda: len(open_fds(pid)) <= len(used), what="the daemon to close them")
            with connect(address) as client:
                assert client.recv(16) == b"ok\n"
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    assert [r["event"] for r in read_json_lines(log)][-1] == "exit"
