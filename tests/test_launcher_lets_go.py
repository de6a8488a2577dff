"""The launcher and the session leader keep none of what the daemon acquired, from the fork on.

Both held copies of every descriptor the daemon had acquired until they
exited: a daemon stopped (or failing) before it was ready was gone, its
pidfile removed and `stop` returned, while its port was still bound for as
long as they took to word its verdict, and a `start` racing that stop failed
"Address already in use", nothing started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    free_port,
    install_program,
    kill_quietly,
    open_fds,
    proc_stat_fields,
    read_pid,
    unix_inode,
)


def _listening_inode(port: int) -> int | None:
    """The inode of the TCP socket listening on 127.0.0.1:``port`` (/proc/net/tcp), if one does."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[9])
    return None


class SlowStart:
    """``aiodaemon start`` of a daemon whose startup hook takes 40 s, on a TCP port."""

    def __init__(self, tmp_path: Path, *extra: str | Path) -> None:
        install_program("cli_slow_app", tmp_path, "slowapp.py")
        install_program("cli_app", tmp_path, "app.py")
        self.dir = tmp_path
        self.pidfile = tmp_path / "app.pid"
        self.port = free_port()
        self.listen = f"tcp=127.0.0.1:{self.port}"
        self.launcher = subprocess.Popen(
            [AIODAEMON, "start", "slowapp:main", "--pidfile", self.pidfile,
             "--listen", self.listen, *extra],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        #: the daemon, once its pid is in its pidfile (its startup hook runs then).
        self.pid = read_pid(self.pidfile)
        #: the session leader that waits on it until its verdict.
        self.leader = int(proc_stat_fields(self.pid)[1])

    def finish(self) -> tuple[int, str]:
        """The launcher's status and stderr."""
        try:
            _, err = self.launcher.communicate(timeout=30)
        finally:
            kill_quietly(self.launcher.pid)
            self.launcher.wait()
        return self.launcher.returncode, err


@pytest.fixture
def slow_start(tmp_path: Path) -> Iterator[SlowStart]:
    """A start under way, stopped and its processes gone at the end whatever the test did."""
    started = SlowStart(tmp_path)
    try:
        yield started
    finally:
        for pid in (started.leader, started.pid):
            kill_quietly(pid, signal.SIGCONT)
        aiodaemon_cli("stop", "--pidfile", started.pidfile)
        kill_quietly(started.pid)
        started.finish()


def test_only_the_starting_daemon_holds_what_it_acquired(tmp_path: Path) -> None:
    """While the startup hook runs, neither launcher nor leader holds its sockets or files."""
    sock, log, out = tmp_path / "u.sock", tmp_path / "app.log", tmp_path / "out.txt"
    start = SlowStart(tmp_path, "--listen", f"u=unix:{sock}", "--log-file", log, "--stdout", out)
    try:
        control = Path(f"{start.pidfile}.ctl")
        acquired = {
            f"socket:[{_listening_inode(start.port)}]",
            f"socket:[{unix_inode(sock)}]",
            f"socket:[{unix_inode(control)}]",
            str(start.pidfile),
            str(log),
            str(out),
        }
        assert acquired <= set(open_fds(start.pid).values())
        assert start.leader not in (1, start.launcher.pid)
        for other in (start.launcher.pid, start.leader):
            assert acquired.isdisjoint(open_fds(other).values()), other
        stopped = aiodaemon_cli("stop", "--pidfile", start.pidfile)
        assert stopped.returncode == 0, stopped.stderr
        # The daemon's own exit freed the port: nothing else had it.
        assert _listening_inode(start.port) is None
    finally:
        kill_quietly(start.pid)
        status, err = start.finish()
    assert (status, err) == (1, "aiodaemon: stopped by `aiodaemon stop` before it was ready\n")
    assert not start.pidfile.exists()
    assert not control.exists()
    assert not sock.exists()


def test_a_start_racing_the_stop_of_an_unready_daemon_binds_its_port(
    slow_start: SlowStart,
) -> None:
    """The verdict held up (the leader stopped): once `stop` returns, a `start` binds the port."""
    # The launcher waits for the leader before it says anything: as a busy
    # machine's scheduler may make it, for as long as the test needs.
    os.kill(slow_start.leader, signal.SIGSTOP)
    stopped = aiodaemon_cli("stop", "--pidfile", slow_start.pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert not slow_start.pidfile.exists()
    assert slow_start.launcher.poll() is None  # still waiting to say the verdict
    assert _listening_inode(slow_start.port) is None
    again = aiodaemon_cli(
        "start", "app:main", "--pidfile", slow_start.pidfile, "--listen", slow_start.listen,
        cwd=slow_start.dir,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    new = int(again.stdout)
    assert _listening_inode(slow_start.port) is not None
    assert str(new) == slow_start.pidfile.read_text().strip()
    os.kill(slow_start.leader, signal.SIGCONT)
    status, err = slow_start.finish()
    assert (status, err) == (1, "aiodaemon: stopped by `aiodaemon stop` before it was ready\n")
    # The launcher, having its verdict, left the new daemon's files alone.
    assert read_pid(slow_start.pidfile) == new
    assert aiodaemon_cli("stop", "--pidfile", slow_start.pidfile).returncode == 0
