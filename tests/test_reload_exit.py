"""A reload hook's sys.exit(): the reload command says the daemon is shutting down, not running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import (
    aiodaemon_cli,
    kill_quietly,
    read_json_lines,
    spawn_program,
    wait_for,
)


@pytest.mark.parametrize(
    ("what", "status", "error"),
    [("3", 3, "SystemExit: 3"), ("missing config", 1, "SystemExit: missing config")],
)
def test_reload_says_the_daemon_shuts_down_with_the_hooks_status(
    tmp_path: Path, what: str, status: int, error: str
) -> None:
    """sys.exit(n) in a reload hook: reload exits 1 "shutting down with status n"; the daemon, n."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    daemon = spawn_program("exit_request", json.dumps(options), str(record), f"reload:{what}")
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main running")
        reload = aiodaemon_cli("reload", "--pidfile", pidfile, "--timeout", "30")
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
    assert reload.returncode == 1, reload.stderr
    said = (
        f"reload hook __main__.reload failed (pid {daemon.pid}, "
        f"shutting down with status {status}): {error}"
    )
    assert reload.stderr == f"aiodaemon: {said}\n"
    assert daemon.returncode == status, err
    records = read_json_lines(log)
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == status
    assert not pidfile.exists()
