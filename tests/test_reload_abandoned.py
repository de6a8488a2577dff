"""A reload that will not run because the daemon is stopping says so in the log.

Before, a SIGHUP just before a SIGTERM left only its ``signal received`` record:
nothing said whether the reload hooks had run, nor did anything for a reload
queued behind another or asked for during the shutdown.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from .control_support import ControlApp
from .support import kill_quietly, program, python, read_json_lines, wait_for, wait_gone


def _events(app: ControlApp) -> list[str]:
    return [str(r["event"]) for r in read_json_lines(app.log)]


def test_a_sighup_during_the_shutdown_is_abandoned_in_the_log(control_app: ControlApp) -> None:
    app = control_app
    pid = app.start()
    app.steer("shutdown", "wait")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: app.records("shutdown started"), what="the shutdown")
    os.kill(pid, signal.SIGHUP)
    (abandoned,) = wait_for(lambda: app.records("reload abandoned"), what="the abandoned reload")
    assert abandoned["level"] == "info"
    assert abandoned["reason"] == "the daemon is stopping"
    app.steer("shutdown-release")
    wait_gone(pid)
    assert "reload started" not in _events(app)


def test_a_reload_queued_behind_a_running_one_is_abandoned_at_the_stop(
    control_app: ControlApp,
) -> None:
    app = control_app
    pid = app.start()
    app.steer("reload", "wait")
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: app.records("reload started"), what="the first reload's hooks")
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: app.records("reload queued"), what="the second reload, queued")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    events = _events(app)
    # The running one was cancelled (its hook did run); the queued one never began.
    assert events.count("reload started") == 1
    assert events.count("reload cancelled") == 1
    assert events.count("reload abandoned") == 1
    assert events.index("reload abandoned") < events.index("shutdown started")


def test_every_sighup_before_a_sigterm_is_accounted_for(tmp_path: Path) -> None:
    """SIGHUP then SIGTERM at once: the reload either ran or was abandoned, said either way."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python([program("idle"), json.dumps(options)])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGHUP)
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    events = [str(r["event"]) for r in read_json_lines(log)]
    assert events.count("reload finished") + events.count("reload abandoned") == 1, events
    assert events[-1] == "exit"
