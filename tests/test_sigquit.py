"""SIGQUIT keeps Python's default action, as docs/lifecycle.md says (audit-race R5).

It is the way to end a daemon whose Python code can no longer run, so
aiodaemon installs no handler for it: the files it leaves are found stale.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    kill_quietly,
    program,
    read_json_lines,
    read_pid,
    wait_for,
)


def test_sigquit_ends_the_daemon_at_once_and_its_files_are_found_stale(tmp_path: Path) -> None:
    """SIGQUIT: killed by the signal, no exit record; `stop` then removes the stale files."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    proc = subprocess.Popen(
        [PYTHON, str(program("idle")), json.dumps(options)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        assert read_pid(pidfile) == proc.pid
        wait_for(
            lambda: log.exists() and any(r["event"] == "ready" for r in read_json_lines(log)),
            what="ready",
        )
        proc.send_signal(signal.SIGQUIT)
        assert proc.wait(timeout=10) == -signal.SIGQUIT
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert "exit" not in [r["event"] for r in read_json_lines(log)]
    assert pidfile.exists()
    assert Path(f"{pidfile}.ctl").exists()
    stop = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    assert "stale" in stop.stderr
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()
