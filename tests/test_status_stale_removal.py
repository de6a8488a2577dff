"""``status`` while a ``stop`` removes a stale pidfile: not "unknown", what the file becomes.

The removal locks the pidfile (through a descriptor that cannot write it) while
it checks the control socket beside: ``status`` read then took the lock for a
stranger's and said "unknown" (4) of a daemon that was dead, a moment later
not running. So it did of a daemon killed while ``status`` asked it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, PYTHON, REPO, clean_env, dead_pid, kill_quietly, wait_for

PAUSED_CONNECT = REPO / "tests" / "programs" / "paused"
REREAD_MARKER = REPO / "tests" / "programs" / "reread_marker"


def _command(args: list[str], hook: Path, variables: dict[str, str]) -> subprocess.Popen[str]:
    """``aiodaemon ARGS`` in the background with the test hook ``hook`` loaded."""
    pythonpath = os.pathsep.join([str(hook), str(REPO)])
    return subprocess.Popen(
        [str(AIODAEMON), *args],
        env=clean_env({"PYTHONPATH": pythonpath, **variables}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("content", ["pid", "empty"])
def test_status_during_a_stale_removal_says_what_the_file_becomes(
    tmp_path: Path, content: str
) -> None:
    """`status` waits out the removal's lock: "not running", exit 3, never "unknown" (4)."""
    pidfile, pause, reread = tmp_path / "d.pid", tmp_path / "pause", tmp_path / "reread"
    pause.mkdir()
    pidfile.write_text(f"{dead_pid()}\n" if content == "pid" else "")
    # A killed daemon's control socket, left beside: the removal checks it under the lock.
    with socket.socket(socket.AF_UNIX) as left:
        left.bind(f"{pidfile}.ctl")
    # Paused under the pidfile's lock, just before it connects to the socket.
    stop = _command(["stop", "--pidfile", str(pidfile)], PAUSED_CONNECT,
                    {"AIODAEMON_TEST_PAUSE": str(pause)})  # fmt: skip
    status = None
    try:
        wait_for((pause / "paused").exists, 30, "the stop to lock the stale pidfile")
        status = _command(["status", "--pidfile", str(pidfile)], REREAD_MARKER,
                          {"AIODAEMON_TEST_REREAD": str(reread)})  # fmt: skip
        # Read once (locked), and read again: it waits for the lock to go.
        wait_for(lambda: reread.exists() or status.poll() is not None, 30, "the status to wait")
        (pause / "go").touch()
        _, stop_err = stop.communicate(timeout=30)
        out, err = status.communicate(timeout=30)
    finally:
        (pause / "go").touch()
        for command in (stop, status):
            if command is not None:
                if command.poll() is None:
                    command.kill()
                command.communicate()
    assert stop.returncode == 0, stop_err
    assert "removed stale pidfile" in stop_err
    assert (status.returncode, out, err) == (3, f"not running (no pidfile {pidfile})\n", "")


def _control_connections(control: Path) -> int:
    """Sockets at ``control`` in /proc/net/unix: its listener, and one per connection made."""
    with open("/proc/net/unix", errors="surrogateescape") as table:
        return sum(1 for line in table if line.rstrip("\n").endswith(f" {control}"))


def test_status_of_a_daemon_killed_while_it_asked_says_dead(tmp_path: Path) -> None:
    """Killed (SIGKILL, the OOM killer) with the request unanswered: "dead" (1), not "unknown".

    The kernel releases a killed process's lock after its descriptor table is gone,
    and a ``start`` or a ``stop`` may take it a moment later: the pidfile read
    again after the dropped connection found a lock the dead pid did not hold.
    """
    shutil.copy(REPO / "tests" / "programs" / "upgrade_blocking.py", tmp_path / "app.py")
    pidfile, control = tmp_path / "app.pid", tmp_path / "app.pid.ctl"
    env = clean_env({"APP_PIDFILE": str(pidfile), "APP_LOG": str(tmp_path / "log")})
    started = subprocess.run([PYTHON, "app.py"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    locker = status = None
    try:
        # Its loop held up in sync code: the request waits unanswered.
        os.kill(pid, signal.SIGWINCH)
        wait_for((tmp_path / "blocked").exists, 30, "the daemon's loop to be held up")
        # Waits for the lock (a start, a stop's stale removal), holds it half a second.
        locker = subprocess.Popen([PYTHON, "-c", _LOCKER, str(pidfile)], text=True,
                                  stdout=subprocess.PIPE)  # fmt: skip
        status = _command(["status", "--pidfile", str(pidfile)], REPO, {})
        wait_for(lambda: _control_connections(control) > 1, 30, "the status to connect")
        os.kill(pid, signal.SIGKILL)
        out, err = status.communicate(timeout=30)
        assert locker.communicate(timeout=30)[0] == "locked\n"
    finally:
        kill_quietly(pid)
        for command in (locker, status):
            if command is not None and command.poll() is None:
                command.kill()
                command.communicate()
    assert status.returncode == 1, (out, err)
    dead = f"dead (pidfile {pidfile} names pid {pid}, which does not hold it"
    # Read before its parent (init, or a subreaper) reaped it, it is said to wait for that.
    assert re.fullmatch(
        rf"{re.escape(dead)}(: it exited, and its parent \(pid \d+\) has not reaped it yet)?\)\n",
        out,
    ), out


_LOCKER = """\
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(0.5)
"""


def test_status_of_a_daemon_killed_before_it_asked_says_dead(tmp_path: Path) -> None:
    """Killed between the pidfile's reading and the connection (refused): "dead" (1).

    It said "running (pid N, ...)", exit 0, from the reading made while the daemon lived.
    """
    pidfile, pause = tmp_path / "d.pid", tmp_path / "pause"
    pause.mkdir()
    started = subprocess.run(
        [str(AIODAEMON), "start", "forever:main", "--pidfile", str(pidfile)],
        cwd=REPO / "tests" / "programs",
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    status = None
    try:
        # Paused once it has read the pidfile, just before it connects to the socket.
        status = _command(["status", "--pidfile", str(pidfile)], PAUSED_CONNECT,
                          {"AIODAEMON_TEST_PAUSE": str(pause)})  # fmt: skip
        wait_for((pause / "paused").exists, 30, "the status to read the pidfile")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, "the daemon to be gone")
        (pause / "go").touch()
        out, err = status.communicate(timeout=30)
    finally:
        kill_quietly(pid)
        (pause / "go").touch()
        if status is not None and status.poll() is None:
            status.kill()
            status.communicate()
    assert (status.returncode, out, err) == (
        1, f"dead (pidfile {pidfile} names pid {pid}, which does not hold it)\n", ""
    )  # fmt: skip


def test_status_of_a_stale_pidfile_removed_as_it_reads_says_not_running(tmp_path: Path) -> None:
    """Opened, then removed before its lock was checked: "not running" (3), never "dead" (1)."""
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{dead_pid()}\n")
    result = subprocess.run(
        [PYTHON, str(REPO / "tests" / "programs" / "status_stale_removed.py"), str(pidfile)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert (result.returncode, result.stdout) == (3, f"not running (no pidfile {pidfile})\n")
    assert result.stderr == ""
