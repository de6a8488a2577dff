"""An ``upgrade`` request a held-up daemon reads only after its client left: nothing starts.

The command gave up (its ``--timeout`` ran out, or it was interrupted or
killed) while the daemon's loop was held up, the request still unread in the
control socket. Once the loop turned again, the daemon read it and upgraded,
behind the back of a user who had been told the command failed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

from .support import wait_for
from .test_upgrade import PROGRAM, App, cli


def test_an_upgrade_whose_client_left_before_it_was_read_is_not_started(tmp_path: Path) -> None:
    """The daemon logs ``upgrade not started`` and serves on; the next upgrade works."""
    shutil.copy(PROGRAM.with_name("upgrade_blocking.py"), tmp_path / "upgrade_app.py")
    app = App(tmp_path, "script")
    old = app.start()
    try:
        _unread_upgrade(app, old)
    finally:
        cli("stop", "--pidfile", str(app.pidfile))


def _unread_upgrade(app: App, old: int) -> None:
    try:
        os.kill(old, signal.SIGWINCH)
        wait_for((app.directory / "blocked").exists, what="the daemon's loop held")
        # What a command that gave up leaves behind: its request, and its end closed.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(f"{app.pidfile}.ctl")
            client.sendall(b'{"v": 1, "cmd": "upgrade", "timeout": 30}\n')
    finally:
        (app.directory / "release").touch()
    [record] = wait_for(
        lambda: app.records("upgrade not started") or app.records("upgrade started"),
        30,
        "the daemon to read the request",
    )
    assert record["event"] == "upgrade not started"
    assert record["reason"] == "its client hung up before the request was read"
    assert app.pid() == old
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.stdout.startswith(f"running (pid {old},"), status
    upgrade = cli("upgrade", "--pidfile", str(app.pidfile))
    assert upgrade.returncode == 0, upgrade.stderr
    assert app.pid() == int(upgrade.stdout) != old
