"""`aiodaemon status` names the hook a starting, reloading or stopping daemon waits on.

Before, a reload hook that hung (a remote config service that never
answers) showed as `reloading` for ever, with nothing to say which of the
program's hooks held it or since when; likewise a start or a stop.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

from .control_support import ControlApp
from .support import AIODAEMON, PROGRAMS, clean_env, wait_for, wait_gone

#: the --json keys docs/production.md promises, unchanged by the plain form's line.
STATUS_KEYS = {"state", "pid", "uptime", "sockets", "last_reload", "version"}


def _waiting_line(app: ControlApp, state: str) -> str | None:
    """The plain status's "waiting on" line once the state is ``state``; None before."""
    status = app.cli("status", "--pidfile", app.pidfile)
    lines = status.stdout.splitlines()
    if status.returncode != 0 or not lines or not lines[0].startswith(f"{state} (pid "):
        return None
    waiting = [line for line in lines if line.startswith("waiting on ")]
    if not waiting:
        return None
    assert waiting == [lines[2]], lines  # one, just after the uptime
    return waiting[0]


def _seconds(line: str) -> int:
    match = re.fullmatch(r"waiting on .+ for (\d\d):(\d\d):(\d\d)", line)
    assert match is not None, line
    hours, minutes, seconds = map(int, match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _json_keys(app: ControlApp) -> set[str]:
    status = app.cli("status", "--json", "--pidfile", app.pidfile)
    assert status.returncode == 0, status.stderr
    return set(json.loads(status.stdout))


def test_status_names_the_startup_hook_a_start_waits_on(control_app: ControlApp) -> None:
    app = control_app
    app.steer("startup", "wait")
    launcher = subprocess.Popen(
        [str(AIODAEMON), "start", "control_app:main", "--pidfile", str(app.pidfile)],
        cwd=PROGRAMS, env=clean_env(app.env()), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        line = wait_for(lambda: _waiting_line(app, "starting"), what="status: starting, a hook")
        assert line.startswith("waiting on startup hook control_app.warm_up for "), line
        # It counts: a later look says at least as long.
        wait_for(lambda: _seconds(_waiting_line(app, "starting") or line) >= 1, what="a second")
        assert _json_keys(app) == STATUS_KEYS
        app.steer("release")
        out, err = launcher.communicate(timeout=60)
        assert launcher.returncode == 0, err
        status = app.cli("status", "--pidfile", app.pidfile)
        assert status.stdout.startswith(f"running (pid {int(out)}, "), status.stdout
        assert "waiting on" not in status.stdout
        assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
        launcher.communicate()


def test_status_names_a_reload_hook_that_hangs(control_app: ControlApp) -> None:
    app = control_app
    app.start()
    app.steer("reload", "wait")
    sent = app.cli("reload", "--no-wait", "--pidfile", app.pidfile)
    assert sent.returncode == 0, sent.stderr
    line = wait_for(lambda: _waiting_line(app, "reloading"), what="status: reloading, a hook")
    assert line.startswith("waiting on reload hook control_app.reload_config for "), line
    assert _json_keys(app) == STATUS_KEYS
    app.steer("reload-release")
    wait_for(lambda: app.records("reload finished"), what="the reload to finish")
    status = app.cli("status", "--pidfile", app.pidfile)
    assert status.stdout.startswith("running (pid "), status.stdout
    assert "waiting on" not in status.stdout
    assert app.cli("stop", "--pidfile", app.pidfile).returncode == 0


def test_status_names_the_shutdown_hook_a_stop_waits_on(control_app: ControlApp) -> None:
    app = control_app
    pid = app.start()
    app.steer("shutdown", "wait")
    os.kill(pid, signal.SIGTERM)
    line = wait_for(lambda: _waiting_line(app, "stopping"), what="status: stopping, a hook")
    assert line.startswith("waiting on shutdown hook control_app.close_up for "), line
    app.steer("shutdown-release")
    wait_gone(pid)
