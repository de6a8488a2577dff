"""A child the program forks keeps none of the daemon's own descriptors: pidfile, sockets, pipe."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest

from .support import (
    aiodaemon_cli,
    free_port,
    is_alive,
    kill_quietly,
    open_fds,
    program,
    python,
    unix_inode,
    wait_for,
    wait_gone,
)


def _child_of_daemon(child_file: Path) -> int:
    """The pid the forked child wrote once it was running (its at-fork hooks done)."""
    return int(wait_for(lambda: child_file.exists() and child_file.read_text(), what="the child"))


def test_a_child_outliving_a_killed_daemon_does_not_block_the_next_start(tmp_path: Path) -> None:
    """SIGKILLed daemon, its child lives on: `status` says dead, `start` starts a new daemon."""
    pidfile = tmp_path / "d.pid"
    options = json.dumps(
        {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    )
    children: list[int] = []
    try:
        started = python([program("forks_a_lingering_child"), options, tmp_path / "child1"])
        assert started.returncode == 0, started.stderr
        daemon = int(pidfile.read_text())
        children.append(_child_of_daemon(tmp_path / "child1"))
        held = set(open_fds(children[0]).values())
        assert str(pidfile) not in held
        assert f"socket:[{unix_inode(Path(str(pidfile) + '.ctl'))}]" not in held
        os.kill(daemon, signal.SIGKILL)
        wait_gone(daemon)
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 1, status.stdout  # LSB: dead, pidfile left
        again = python([program("forks_a_lingering_child"), options, tmp_path / "child2"])
        assert again.returncode == 0, again.stderr
        assert int(pidfile.read_text()) not in (daemon, children[0])
        children.append(_child_of_daemon(tmp_path / "child2"))
    finally:
        for child in children:
            kill_quietly(child)
        aiodaemon_cli("stop", "--pidfile", pidfile)


def test_a_child_outliving_the_daemon_keeps_no_health_socket(tmp_path: Path) -> None:
    """Daemon stopped, its child lives on: probes are refused and the next start binds the port."""
    pidfile = tmp_path / "d.pid"
    port = free_port()
    options = json.dumps(
        {
            "detach": True,
            "pidfile": str(pidfile),
            "log_file": str(tmp_path / "log"),
            "health": f"127.0.0.1:{port}",
        }
    )
    children: list[int] = []
    try:
        started = python([program("forks_a_lingering_child"), options, tmp_path / "child1"])
        assert started.returncode == 0, started.stderr
        children.append(_child_of_daemon(tmp_path / "child1"))
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        # Not queued unanswered in a backlog the child keeps: nobody listens.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        again = python([program("forks_a_lingering_child"), options, tmp_path / "child2"])
        assert again.returncode == 0, again.stderr
        children.append(_child_of_daemon(tmp_path / "child2"))
    finally:
        for child in children:
            kill_quietly(child)
        aiodaemon_cli("stop", "--pidfile", pidfile)


def test_a_child_forked_before_ready_does_not_hide_the_daemon_s_death(tmp_path: Path) -> None:
    """Daemon killed before ready, the child its startup hook forked lives on: start fails now."""
    pidfile = tmp_path / "d.pid"
    options = json.dumps(
        {
            "detach": True,
            "pidfile": str(pidfile),
            "log_file": str(tmp_path / "log"),
            "start_timeout": 60,
        }
    )
    child_file = tmp_path / "child"
    try:
        # Not the start timeout's "not ready after 60 s", nor waiting for the child.
        started = python([program("forks_then_dies"), options, child_file], timeout=30)
        assert started.returncode == 1
        assert "was killed by SIGKILL before it was ready" in started.stderr
        assert is_alive(_child_of_daemon(child_file))
    finally:
        if child_file.exists():
            kill_quietly(int(child_file.read_text()))


def _tcp_inode(port: int) -> int:
    """The inode of the TCP socket listening on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[9])
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_a_listen_socket_named_health_is_the_programs_to_share(tmp_path: Path) -> None:
    """listen={"health": ...} without health=: a forked child keeps it, as every listen= socket.

    The name alone made it the health socket, which no child keeps: a pre-fork
    worker found it closed.
    """
    pidfile = tmp_path / "d.pid"
    web, health = free_port(), free_port()
    listen = {"web": f"127.0.0.1:{web}", "health": f"127.0.0.1:{health}"}
    options = json.dumps({"detach": True, "pidfile": str(pidfile), "listen": listen})
    child = None
    try:
        started = python([program("forks_a_lingering_child"), options, tmp_path / "child"])
        assert started.returncode == 0, started.stderr
        child = _child_of_daemon(tmp_path / "child")
        held = set(open_fds(child).values())
        assert f"socket:[{_tcp_inode(web)}]" in held
        assert f"socket:[{_tcp_inode(health)}]" in held
    finally:
        if child is not None:
            kill_quietly(child)
        aiodaemon_cli("stop", "--pidfile", pidfile)
