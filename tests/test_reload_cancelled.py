"""A reload the shutdown cancels: the waiting command, the log and the record say so."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    clean_env,
    kill_quietly,
    read_json_lines,
    spawn_program,
    wait_for,
)


def test_a_hung_reload_cancelled_by_a_stop_is_reported_as_cancelled(tmp_path: Path) -> None:
    """reload waits on a hanging hook, then SIGTERM: it exits 1 "cancelled", the log says so."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "pidfile": str(pidfile), "log_file": str(log)}
    daemon = spawn_program("exit_request", json.dumps(options), str(record), "reload:hang")
    reload = None
    try:
        wait_for(lambda: "main" in record.read_text().splitlines(), what="main running")
        reload = subprocess.Popen(
            [str(AIODAEMON), "reload", "--pidfile", str(pidfile), "--timeout", "30"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        wait_for(lambda: "reload hook" in record.read_text().splitlines(), what="the reload hook")
        daemon.send_signal(signal.SIGTERM)
        _, reload_err = reload.communicate(timeout=30)
        _, err = daemon.communicate(timeout=30)
    finally:
        kill_quietly(daemon.pid)
        daemon.wait()
        if reload is not None:
            kill_quietly(reload.pid)
            reload.wait()
    assert daemon.returncode == 0, err
    assert reload.returncode == 1, reload_err
    assert "reload cancelled: the daemon is stopping (pid " in reload_err
    assert "still running" not in reload_err
    assert "did not run" not in reload_err
    records = read_json_lines(log)
    (cancelled,) = [r for r in records if r["event"] == "reload cancelled"]
    assert cancelled["hook"] == "__main__.reload"
    assert cancelled["error"] == "cancelled: the daemon is stopping"
    assert records[-1]["event"] == "exit"
