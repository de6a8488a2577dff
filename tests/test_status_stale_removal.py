"""``status`` while a ``stop`` removes a stale pidfile: not "unknown", what the file becomes.

The removal locks the pidfile (through a descriptor that cannot write it) while
it checks the control socket beside: ``status`` read then took the lock for a
stranger's and said "unknown" (4) of a daemon that was dead, a moment later
not running.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, REPO, clean_env, wait_for

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


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("content", ["pid", "empty"])
def test_status_during_a_stale_removal_says_what_the_file_becomes(
    tmp_path: Path, content: str
) -> None:
    """`status` waits out the removal's lock: "not running", exit 3, never "unknown" (4)."""
    pidfile, pause, reread = tmp_path / "d.pid", tmp_path / "pause", tmp_path / "reread"
    pause.mkdir()
    pidfile.write_text(f"{_dead_pid()}\n" if content == "pid" else "")
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
