"""``status`` of a daemon whose process exited and waits for its parent to reap it.

``aiodaemon run`` under a parent that waits late (a supervisor reaping on its
own schedule): the daemon's process stays in the process table, state ``Z``,
after its exit. Killed (SIGKILL), it left its pidfile naming that pid, and
``status`` said only that the pid "does not hold it", of a pid ``ps`` still
lists. Stopped gracefully, it removed its pidfile and let go of its lock and
sockets before it exited: not running (3), and a start works at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    proc_state,
    read_pid,
    wait_for,
)


def _run_unwaited(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``aiodaemon run`` as our child, which we reap only when we choose (Popen.wait)."""
    install_program("cli_app", tmp_path)
    pidfile = tmp_path / "app.pid"
    child = subprocess.Popen(
        [PYTHON, "-m", "aiodaemon", "run", "app:main", "--pidfile", pidfile,
         "--log-file", tmp_path / "app.jsonl"],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert read_pid(pidfile) == child.pid
    wait_for(lambda: (tmp_path / "started").exists(), 30, "the daemon started")
    return child, pidfile


def test_a_killed_daemon_not_reaped_yet_is_dead_and_said_to_wait_for_its_parent(
    tmp_path: Path,
) -> None:
    """Dead (1), its pidfile left: the line says the pid exited and whose reaping it awaits."""
    child, pidfile = _run_unwaited(tmp_path)
    try:
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: proc_state(child.pid) == "Z", 10, "the daemon a zombie")
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 1, status.stderr
        assert status.stdout == (
            f"dead (pidfile {pidfile} names pid {child.pid}, which does not hold it: it exited,"
            f" and its parent (pid {os.getpid()}) has not reaped it yet)\n"
        )
        as_json = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["state"] == "dead"
        assert json.loads(as_json.stdout)["pid"] == child.pid
    finally:
        child.kill()
        child.wait()
    # Reaped: the pid is gone, and the line says no more than that.
    status = aiodaemon_cli("status", "--pidfile", pidfile)
    assert status.returncode == 1
    assert (
        status.stdout == f"dead (pidfile {pidfile} names pid {child.pid}, which does not hold it)\n"
    )


def test_a_stopped_daemon_not_reaped_yet_is_not_running(tmp_path: Path) -> None:
    """Its shutdown done, its pidfile removed and lock let go: not running (3) while a zombie."""
    child, pidfile = _run_unwaited(tmp_path)
    try:
        os.kill(child.pid, signal.SIGTERM)
        wait_for(lambda: proc_state(child.pid) == "Z", 30, "the daemon a zombie")
        assert not pidfile.exists()
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert (status.returncode, status.stdout) == (3, f"not running (no pidfile {pidfile})\n")
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
