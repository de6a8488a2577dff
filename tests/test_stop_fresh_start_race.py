"""``stop`` racing a fresh ``start``: the daemon it looked at is gone, the new one is left running.

A ``stop`` looked at the pidfile (pid A); before its request went out, A was
stopped by someone else and a new daemon started (a deploy's ``restart``, an
operator's ``start``). The new daemon holds a lock of its own, not A's
inherited through an upgrade: ``stop`` took it for A's successor, said
"(an upgrade)" and stopped it, leaving nothing running after a ``start`` that
had printed its pid and exited 0.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    REPO,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    read_pid,
    wait_for,
    wait_gone,
)

PAUSED_CONNECT = REPO / "tests" / "programs" / "paused"


def _start(directory: Path, pidfile: Path) -> int:
    result = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=directory)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_stop_whose_daemon_was_replaced_by_a_fresh_start_leaves_the_new_one(
    tmp_path: Path,
) -> None:
    """The paused ``stop`` says its daemon stopped and exits 0; the fresh daemon serves on."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile, pause = tmp_path / "app.pid", tmp_path / "pause"
    pause.mkdir()
    old = _start(tmp_path, pidfile)
    new: int | None = None
    pythonpath = os.pathsep.join([str(PAUSED_CONNECT), str(REPO)])
    # Paused after its look at the pidfile (pid `old`), before it asks the control socket.
    stop = subprocess.Popen(
        [str(AIODAEMON), "stop", "--pidfile", str(pidfile)],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": pythonpath, "AIODAEMON_TEST_PAUSE": str(pause)}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((pause / "paused").exists, 30, "the stop to look at the pidfile")
        other = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
        assert other.returncode == 0, other.stderr
        wait_gone(old)
        new = _start(tmp_path, pidfile)
        (pause / "go").touch()
        out, err = stop.communicate(timeout=60)
    except BaseException:
        if stop.poll() is None:
            stop.kill()
            stop.communicate()
        for pid in (old, new):
            if pid is not None:
                kill_quietly(pid)
        raise
    try:
        assert stop.returncode == 0, err
        assert out == ""
        assert err == f"aiodaemon: stopped (pid {old})\n"
        assert is_alive(new)
        assert read_pid(pidfile) == new
    finally:
        kill_quietly(new)
