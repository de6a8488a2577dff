"""A step of the system clock (NTP, ``date -s``, a resumed VM) moves no deadline and no uptime.

The daemon and the commands run under libfaketime with the monotonic clock
left alone, as a real step leaves it, and the test moves their wall clock by
hours while a deadline runs.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

from .control_support import ControlApp, open_control_app
from .support import require_tool, wait_for

#: A step larger than every budget the daemon and the commands count.
_STEP = "+5h"


def _faketime(app: ControlApp) -> Path:
    """Run the daemon and the commands on a wall clock the test steps; the file that steps it."""
    require_tool("faketime")
    libraries = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert libraries, "faketime is installed without its library"
    clock = app.dir / "clock"
    clock.write_text("+0\n")
    app.extra_env = {
        "LD_PRELOAD": libraries[0],
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
    return clock


def _uptime(app: ControlApp) -> float:
    result = app.cli("status", "--pidfile", app.pidfile, "--json")
    assert result.returncode == 0, result.stderr
    uptime = json.loads(result.stdout)["uptime"]
    assert isinstance(uptime, float | int)
    return float(uptime)


def test_clock_steps_move_no_deadline_and_no_uptime() -> None:
    """Hours of clock steps during a reload's and a stop's wait: both finish, uptime stays true."""
    with open_control_app() as app:
        clock = _faketime(app)
        app.start()
        clock.write_text(f"{_STEP}\n")
        ahead = _uptime(app)
        clock.write_text("-5h\n")
        behind = _uptime(app)
        assert 0 <= ahead <= behind < 60
        # The log's timestamps are the (stepped) wall clock a reader compares with.
        stamps = [str(app.records(event)[0]["timestamp"]) for event in ("starting", "ready")]
        assert stamps == sorted(stamps)

        app.steer("reload", "wait")
        reload = app.watch("reload", "--pidfile", app.pidfile, "--timeout", "30")
        try:
            wait_for(lambda: app.reload_runs() == ["wait"], what="the reload hook")
            clock.write_text(f"{_STEP}\n")
            _uptime(app)  # the daemon's loop has turned on the stepped clock
            app.steer("reload-release")
            code, _, errors = reload.finish()
            assert code == 0, errors
        finally:
            reload.kill()

        app.steer("shutdown", "wait")
        stop = app.watch("stop", "--pidfile", app.pidfile, "--timeout", "30")
        try:
            wait_for(lambda: app.records("shutdown started"), what="the shutdown")
            clock.write_text("-5h\n")
            _uptime(app)
            clock.write_text(f"{_STEP}\n")
            _uptime(app)
            app.steer("shutdown-release")
            code, _, errors = stop.finish()
            assert code == 0, errors
        finally:
            stop.kill()
        assert not app.records("forced exit")
        assert [r["status"] for r in app.records("exit")] == [0]
