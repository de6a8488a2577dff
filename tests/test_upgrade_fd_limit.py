"""Upgrades a daemon near its descriptor limit cannot start: each says why, and leaks nothing."""

from __future__ import annotations

import resource

from .support import open_fds, wait_for
from .test_upgrade import App, cli
from .test_upgrade_faults import app as app


def test_upgrades_failing_for_lack_of_descriptors_leave_the_daemons_own(app: App) -> None:
    """Each failed try says "Too many open files"; the daemon's descriptors stay as they were."""
    old = app.start()
    before = sorted(wait_for(lambda: open_fds(old), 10, "the daemon's descriptors"))
    _, hard = resource.prlimit(old, resource.RLIMIT_NOFILE)
    failed = []
    for room in range(1, 12):
        # Room for the request's connection and a few of the spawn's descriptors, not all.
        resource.prlimit(old, resource.RLIMIT_NOFILE, (len(before) + room, hard))
        result = cli("upgrade", "--pidfile", str(app.pidfile))
        if result.returncode == 0:
            break
        assert "Too many open files" in result.stderr
        failed.append(room)
        # The request's connection closes as its answer goes out: a moment.
        wait_for(lambda: sorted(open_fds(old)) == before, 10, "the descriptors as they were")
        assert app.get() == f"v1 {old}"
    assert len(failed) >= 4, failed
