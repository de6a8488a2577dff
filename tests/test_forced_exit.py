"""The forced exit (a second stop signal during shutdown) seen from outside."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .support import has_line, kill_quietly, past_duplicate_window, spawn_program, wait_for


def test_a_third_signal_does_not_replace_the_forced_exits_status(tmp_path: Path) -> None:
    """TERM, TERM, then INT while the forced exit runs: it still exits 143, as it said."""
    record, release, pidfile = tmp_path / "record.txt", tmp_path / "release", tmp_path / "d.pid"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(tmp_path / "log.jsonl")}
    proc = spawn_program("forced_exit_held", json.dumps(options), record, release)
    try:

        def recorded(line: str) -> bool:
            return has_line(record, line)

        wait_for(lambda: recorded("main running"), what="main running")
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: recorded("stopping"), what="the hanging shutdown hook")
        past_duplicate_window()
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: recorded("forced exit"), what="the forced exit")
        proc.send_signal(signal.SIGINT)
        release.touch()
        _, err = proc.communicate(timeout=30)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "forced exit (second stop signal during shutdown: SIGTERM), status 143" in err
    assert record.read_text().splitlines().count("forced exit") == 1
    assert not pidfile.exists()
