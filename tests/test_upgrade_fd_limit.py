"""Upgrades a daemon near its descriptor limit cannot start: each says why, and leaks nothing."""

from __future__ import annotations

import resource

from .support import open_fds, wait_for
from .test_upgrade import App, cli
from .test_upgrade_faults import app as app


def _sockets_and_pipes(pid: int) -> set[str]:
    """What ``pid``'s socket and pipe descriptors point at (an upgrade's spawn opens these).

    Not its regular files: an import, a /proc read come and go at any time.
    """
    return {t for t in open_fds(pid).values() if t.startswith(("socket:", "pipe:"))}


def test_upgrades_failing_for_lack_of_descriptors_leave_the_daemons_own(app: App) -> None:
    """Each failed try says "Too many open files"; the daemon's descriptors stay as they were."""
    old = app.start()
    before = _sockets_and_pipes(old)
    count = len(open_fds(old))
    _, hard = resource.prlimit(old, resource.RLIMIT_NOFILE)
    failed = []
    for room in range(1, 12):
        # Room for the request's connection and a few of the spawn's descriptors, not all.
        resource.prlimit(old, resource.RLIMIT_NOFILE, (count + room, hard))
        result = cli("upgrade", "--pidfile", str(app.pidfile))
        if result.returncode == 0:
            break
        assert "Too many open files" in result.stderr
        failed.append(room)
        # The request's connection closes as its answer goes out: a moment.
        # None new (the readiness pipe of the start may be gone by now).
        wait_for(lambda: _sockets_and_pipes(old) <= before, 10, "no new socket or pipe")
        assert app.get() == f"v1 {old}"
    assert len(failed) >= 4, failed
