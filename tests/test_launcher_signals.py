"""The launcher of a detached start, signalled at the edges of its wait: it says what is true.

Before, a SIGTERM in the instant between the fork and the launcher's handlers
ended it silently (status 143, not a word, the daemon starting on), and one
arriving once the daemon was ready (the launcher printing its pid) said
"the daemon goes on starting".
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    program,
    python,
    read_pid,
    signal_pending,
    wait_for,
    wait_gone,
)


def test_a_sigterm_right_after_the_fork_is_reported(tmp_path: Path) -> None:
    """SIGTERM before the launcher's handlers: 143, the daemon's pid and how to stop it."""
    pidfile, record = tmp_path / "d.pid", tmp_path / "record.txt"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    started = python([program("launcher_fork_signal"), json.dumps(options), record])
    pid = read_pid(pidfile)
    try:
        assert started.returncode == 128 + signal.SIGTERM, started.stderr
        assert started.stderr.splitlines() == [
            "aiodaemon: interrupted while waiting for the daemon to be ready; "
            f"the daemon (pid {pid}) goes on starting; "
            f"`aiodaemon stop --pidfile {pidfile}` stops it"
        ]
        # As said: it goes on starting.
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main")
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)


def _drain(fd: int) -> None:
    """Read ``fd`` to its end."""
    while os.read(fd, 65536):
        pass


def _in_write(pid: int) -> bool:
    """Whether ``pid`` is blocked in write(2)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "1"
    except (OSError, IndexError):
        return False


def test_a_signal_once_the_daemon_is_ready_does_not_say_it_goes_on_starting(
    tmp_path: Path,
) -> None:
    """`start` stuck printing the pid to a full pipe, then SIGTERM: 143, "it runs"."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    read_end, write_end = os.pipe()
    try:
        # A reader that reads nothing yet: the pipe filled, the pid's line blocks.
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        os.set_blocking(write_end, False)
        while True:
            try:
                os.write(write_end, b"x" * 4096)
            except BlockingIOError:
                break
        os.set_blocking(write_end, True)
        start = subprocess.Popen(
            [str(AIODAEMON), "start", "app:main", "--pidfile", str(pidfile),
             "--log-file", str(tmp_path / "log")],
            stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True, cwd=tmp_path, env=clean_env(),
        )  # fmt: skip
        os.close(write_end)
        write_end = -1
        pid = read_pid(pidfile)
        try:
            wait_for(lambda: _in_write(start.pid), what="the launcher to print the pid")
            start.send_signal(signal.SIGTERM)
            wait_for(lambda: not signal_pending(start.pid, signal.SIGTERM), what="its delivery")
            # Now the reader reads: what the launcher still writes goes through.
            drained = threading.Thread(target=_drain, args=(read_end,))
            drained.start()
            _, err = start.communicate(timeout=30)
            drained.join(30)
            assert start.returncode == 128 + signal.SIGTERM, err
            assert err.splitlines() == [
                f"aiodaemon: interrupted after the daemon (pid {pid}) was ready; it runs; "
                f"`aiodaemon stop --pidfile {pidfile}` stops it"
            ]
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.wait()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
