"""``stop`` racing an upgrade's hand-over: whoever serves after it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from .support import AIODAEMON, REPO, clean_env, wait_for, wait_gone
from .test_upgrade import App, cli
from .test_upgrade_faults import _end_what_is_left, _successor_starting, _upgrade_in_background
from .test_upgrade_faults import app as app

PAUSED_CONNECT = REPO / "tests" / "programs" / "paused_connect"


def test_stop_that_read_the_old_pid_before_the_hand_over_stops_the_new_daemon(
    app: App, tmp_path: Path
) -> None:
    """``stop`` saw the old pid, the hand-over came before its request: nothing runs after."""
    gate = app.directory / "gate"
    old = app.start(APP_GATE=str(gate))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade = _upgrade_in_background(app)
    successor = None
    stop = None
    try:
        successor = _successor_starting(app)
        wait_for((app.directory / "gate.entered").exists, 30, "the startup hook")
        pause = tmp_path / "pause"
        pause.mkdir()
        pythonpath = os.pathsep.join([str(PAUSED_CONNECT), str(REPO)])
        stop = subprocess.Popen(
            [str(AIODAEMON), "stop", "--pidfile", str(app.pidfile)],
            env=clean_env({"PYTHONPATH": pythonpath, "AIODAEMON_TEST_PAUSE": str(pause)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # stop has read the pidfile (the old pid); the hand-over completes now.
        wait_for((pause / "paused").exists, 30, "stop to look at the pidfile")
        gate.touch()
        out, err = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 0, err
        assert out == f"{successor}\n"
        (pause / "go").touch()
        _, said = stop.communicate(timeout=60)
    except BaseException:
        _end_what_is_left(upgrade, successor)
        if stop is not None and stop.poll() is None:
            stop.send_signal(signal.SIGKILL)
            stop.communicate()
        raise
    assert stop.returncode == 0, said
    assert said == (
        f"aiodaemon: pid {old} handed over to pid {successor} (an upgrade) meanwhile; stopping it\n"
        f"aiodaemon: stopped (pid {successor})\n"
    )
    wait_gone(successor)
    wait_gone(old)
    assert not app.pidfile.exists()
    assert cli("status", "--pidfile", str(app.pidfile)).returncode == 3
