"""Backstop threads the system refuses: the work goes on unguarded, and the log says so."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import program, python, read_json_lines, wait_for, wait_gone

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory nobody owns (pytest's tmp_path is closed to nobody)."""
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-backstop-"))
    base.chmod(0o755)
    path = base / "run"
    path.mkdir()
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.root
def test_a_shutdown_without_a_backstop_thread_still_runs_its_hooks(run_dir: Path) -> None:
    """No thread can start at SIGTERM: the shutdown hooks run and the exit is 0, with a warning."""
    pidfile, log = run_dir / "d.pid", run_dir / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "user": "nobody"}
    started = python([program("threads_refused"), json.dumps(options), run_dir])
    assert started.returncode == 0, started.stderr
    wait_for((run_dir / "limited").exists, what="main to refuse itself threads")
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert (run_dir / "shutdown-hook").read_text() == "ran"
    records = read_json_lines(log)
    warning = next(r for r in records if r["event"] == "backstop not started")
    assert warning["thread"] == "aiodaemon-shutdown-backstop"
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    assert not pidfile.exists()
