"""SIGQUIT keeps Python's default action, as docs/lifecycle.md says (audit-race R5).

It is the way to end a daemon whose Python code can no longer run, so
aiodaemon installs no handler for it: the files it leaves are found stale.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
def test_sigquit_ends_the_daemon_at_once_and_its_files_are_found_stale(
    tmp_path: Path, detach: bool
) -> None:
    """SIGQUIT: killed by the signal, no exit record; `stop` then removes the stale files."""
    # Detached as well: `start` holds SIGQUIT for its own wait, which a
    # Ctrl-\ ends as Ctrl-C does; the daemon gets it back at its fork.
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    options = {"detach": detach, "pidfile": str(pidfile), "log_file": str(log)}
    proc = subprocess.Popen(
        [PYTHON, str(program("idle")), json.dumps(options)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    pid = 0
    try:
        pid = read_pid(pidfile)
        assert detach or pid == proc.pid
        wait_for(
            lambda: log.exists() and any(r["event"] == "ready" for r in read_json_lines(log)),
            what="ready",
        )
        os.kill(pid, signal.SIGQUIT)
        if detach:
            assert proc.wait(timeout=10) == 0
            wait_gone(pid)
        else:
            assert proc.wait(timeout=10) == -signal.SIGQUIT
    finally:
        kill_quietly(proc.pid)
        proc.wait()
        if pid:
            kill_quietly(pid)
    assert "exit" not in [r["event"] for r in read_json_lines(log)]
    assert pidfile.exists()
    assert Path(f"{pidfile}.ctl").exists()
    stop = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert "stale" in stop.stderr
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()
