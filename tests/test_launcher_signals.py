"""The launcher of a detached start, signalled at the edges of its wait: it says what is true.

Before, a SIGTERM in the instant between the fork and the launcher's handlers
ended it silently (status 143, not a word, the daemon starting on), and one
arriving once the daemon was ready (the launcher printing its pid) said
"the daemon goes on starting".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    full_pipe,
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
        # And the session leader that waited on it for the launcher went with the launcher.
        wait_gone(os.getsid(pid))
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


def _start_stuck_printing(
    tmp_path: Path, stdout: int, stderr: int | IO[str]
) -> tuple[subprocess.Popen[str], int, Path]:
    """`aiodaemon start` with its stdout on a full pipe, once stuck printing the daemon's pid.

    Returns the launcher, the daemon's pid and its pidfile.
    """
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    start = subprocess.Popen(
        [str(AIODAEMON), "start", "app:main", "--pidfile", str(pidfile),
         "--log-file", str(tmp_path / "log")],
        stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        text=True, cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    pid = 0
    try:
        pid = read_pid(pidfile)
        wait_for(lambda: _in_write(start.pid), what="the launcher to print the pid")
    except BaseException:
        kill_quietly(start.pid)
        start.communicate()
        if pid:
            kill_quietly(pid)
        raise
    return start, pid, pidfile


def test_a_signal_once_the_daemon_is_ready_does_not_say_it_goes_on_starting(
    tmp_path: Path,
) -> None:
    """`start` stuck printing the pid to a full pipe, then SIGTERM: 143, "it runs"."""
    read_end, write_end = full_pipe()
    try:
        start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, subprocess.PIPE)
        os.close(write_end)
        write_end = -1
        try:
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_signal_ends_a_start_stuck_on_an_output_nobody_reads(
    tmp_path: Path, signum: int, stderr_too: bool
) -> None:
    """`start` stuck printing the pid to a pipe never read: one signal ends it, 128+N."""
    err_file = tmp_path / "err"
    read_end, write_end = full_pipe()
    try:
        with err_file.open("w") as err:
            stderr = write_end if stderr_too else err
            start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, stderr)
        try:
            start.send_signal(signum)
            assert start.wait(timeout=10) == 128 + signum
            if not stderr_too:
                assert err_file.read_text().splitlines() == [
                    f"aiodaemon: interrupted after the daemon (pid {pid}) was ready; it runs; "
                    f"`aiodaemon stop --pidfile {pidfile}` stops it"
                ]
            # The launcher left the daemon's files alone: the control socket answers.
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["pid"] == pid
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.wait()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_second_ctrl_c_on_a_stuck_start_leaves_the_daemon_its_control_socket(
    tmp_path: Path,
) -> None:
    """Ctrl-C twice on `start` stuck printing: 130, and the running daemon keeps its socket."""
    read_end, write_end = full_pipe()
    try:
        start, pid, pidfile = _start_stuck_printing(tmp_path, write_end, subprocess.PIPE)
        try:
            start.send_signal(signal.SIGINT)
            assert start.stderr is not None
            assert "was ready; it runs" in start.stderr.readline()
            start.send_signal(signal.SIGINT)
            assert start.wait(timeout=10) == 128 + signal.SIGINT
            assert (tmp_path / "app.pid.ctl").exists()
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["state"] == "running"
            stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
            assert stopped.returncode == 0, stopped.stderr
            wait_gone(pid)
        finally:
            kill_quietly(start.pid)
            start.communicate()
            kill_quietly(pid)
    finally:
        os.close(read_end)
        os.close(write_end)
