"""A launcher killed before the daemon reports its pid: the daemon goes on, as Ctrl-C says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .support import (
    PYTHON,
    clean_env,
    is_alive,
    kill_quietly,
    program,
    read_json_lines,
    wait_for,
    wait_gone,
)


def _launcher_killed_at_fork(options: dict[str, object], marker: Path, *extra: str) -> int:
    """Start ``launcher_gone``, SIGKILL its launcher before the daemon's pid reaches it: the pid."""
    launcher = subprocess.Popen(
        [PYTHON, str(program("launcher_gone")), json.dumps(options), str(marker), *extra],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(marker.exists, what="the daemon's fork")
    launcher.kill()
    assert launcher.wait(timeout=10) == -signal.SIGKILL
    return int(wait_for(lambda: marker.read_text(), what="the daemon's pid"))


def test_a_daemon_whose_launcher_died_before_its_pid_reached_it_goes_on(tmp_path: Path) -> None:
    """It becomes ready, writes its pidfile and stops cleanly; no AssertionError kills it."""
    pidfile, log, marker = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "forked"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    daemon = _launcher_killed_at_fork(options, marker)
    wait_for(
        lambda: pidfile.exists() and pidfile.read_text().strip() == str(daemon), what="pidfile"
    )
    wait_for(lambda: any(r["event"] == "ready" for r in read_json_lines(log)), what="ready")
    assert is_alive(daemon)
    os.kill(daemon, signal.SIGTERM)
    wait_gone(daemon)
    assert read_json_lines(log)[-1]["event"] == "exit"
    assert not pidfile.exists()


def test_without_its_launcher_a_daemon_still_keeps_its_start_timeout(tmp_path: Path) -> None:
    """Its startup hangs and nobody is left to stop it: it ends itself at start_timeout."""
    pidfile, log, marker = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "forked"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "start_timeout": 1.0}
    daemon = _launcher_killed_at_fork(options, marker, "hang")
    try:
        wait_gone(daemon, timeout=30)
    finally:
        kill_quietly(daemon)
    records = read_json_lines(log)
    assert records[-1]["event"] == "exit"
    assert records[-1]["reason"] == "not ready after 1 s"
    assert not pidfile.exists()


def test_without_its_launcher_a_blocked_start_still_ends(tmp_path: Path) -> None:
    """A startup hook blocks the loop: the backstop ends it at start_timeout + shutdown_timeout."""
    pidfile, log, marker = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "forked"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "start_timeout": 1.0,
        "shutdown_timeout": 1.0,
    }
    daemon = _launcher_killed_at_fork(options, marker, "block")
    try:
        wait_gone(daemon, timeout=20)
    finally:
        kill_quietly(daemon)
    assert not pidfile.exists()
