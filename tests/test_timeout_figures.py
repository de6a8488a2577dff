"""The ``--timeout`` a command echoes is the figure given: ``1e-9`` is not "0 s", nor "1e-09 s".

``status --timeout 1e-9`` said "no answer ... within 0 s" (the wait rounded to
hundredths); ``reload`` and ``stop`` wrote ``1e-09``, and ``:g`` cut long
figures to six digits.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from .support import wait_for, wait_gone
from .test_upgrade import PROGRAM, App, cli
from .test_upgrade_faults import app as app

TINY = "1e-9"
#: How the commands write it.
SHOWN = "0.000000001"


def test_commands_of_a_held_up_daemon_echo_a_tiny_timeout_as_given(tmp_path: Path) -> None:
    """``status``, ``reload`` and ``stop`` with ``--timeout 1e-9``: "0.000000001 s" each."""
    shutil.copy(PROGRAM.with_name("upgrade_blocking.py"), tmp_path / "upgrade_app.py")
    app = App(tmp_path, "script")
    pid = app.start()
    pidfile = str(app.pidfile)
    try:
        os.kill(pid, signal.SIGWINCH)
        wait_for((tmp_path / "blocked").exists, what="the daemon's loop held")
        status = cli("status", "--pidfile", pidfile, "--timeout", TINY)
        assert (status.returncode, status.stdout) == (
            4,
            f"unknown (no answer from pid {pid} within {SHOWN} s)\n",
        )
        reload = cli("reload", "--pidfile", pidfile, "--timeout", TINY)
        assert reload.returncode == 1
        assert reload.stderr.startswith(
            f"aiodaemon: still reloading after {SHOWN} s (pid {pid} did not answer:"
        )
        stop = cli("stop", "--pidfile", pidfile, "--timeout", TINY)
        assert stop.returncode == 0, stop.stderr
        assert f"aiodaemon: pid {pid} still running {SHOWN}s after SIGTERM" in stop.stderr
        wait_gone(pid)
    finally:
        (tmp_path / "release").touch()
        cli("stop", "--pidfile", pidfile)


def test_upgrade_without_control_socket_echoes_a_tiny_timeout_as_given(app: App) -> None:
    """The new process not ready within ``--timeout 1e-9`` is killed "after 0.000000001 s"."""
    old = app.start("--no-control")
    app.edit('MODE = ""', 'MODE = "hang"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", TINY)
    assert result.returncode == 1
    assert f"was not ready after {SHOWN} s: sent it SIGTERM; pid {old} serves on" in result.stderr
    assert app.pid() == old
