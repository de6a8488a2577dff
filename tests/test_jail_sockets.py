"""A chrooted daemon removes its unix socket files inside the jail at exit, as the pidfile.

It removed them by their host paths, which do not exist inside the jail: every
``listen=`` and ``health=`` socket file, and the control socket next to a
pidfile in the jail, stayed behind after a stop.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from .support import aiodaemon_cli, kill_quietly, read_pid, wait_gone

pytestmark = pytest.mark.root


@pytest.fixture
def base(jail_base: Path) -> Path:
    """A directory holding a jail with a ``run`` directory of nobody's."""
    (jail_base / "jail" / "run").mkdir()
    os.chown(jail_base / "jail" / "run", pwd.getpwnam("nobody").pw_uid, -1)
    return jail_base


@pytest.mark.parametrize("user", [[], ["--user", "nobody"]], ids=["root", "nobody"])
def test_the_socket_files_inside_the_jail_are_removed_at_exit(base: Path, user: list[str]) -> None:
    """``listen=``, ``health=`` and control sockets in the jail are gone once ``stop`` returns."""
    run = base / "jail" / "run"
    pidfile = run / "d.pid"
    started = aiodaemon_cli(
        "start", "tests.programs.forever:main", "--chroot", base / "jail", *user,
        "--pidfile", pidfile, "--listen", f"web=unix:{run / 'web.sock'}",
        "--health", f"unix:{run / 'health.sock'}",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert sorted(p.name for p in run.iterdir()) == [
            "d.pid", "d.pid.ctl", "health.sock", "web.sock"
        ]  # fmt: skip
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    assert list(run.iterdir()) == []
