"""A forced exit kills the daemon's own children, never another user's process on a reused pid.

multiprocessing's and the process pools' records keep pids of children reaped
by others: a ``forkserver`` child, reaped by the forkserver at once, and the
workers of a broken pool, reaped by its manager thread. Such a pid may be
given to another user's process; root's daemon, forced to exit, SIGKILLed it.
Each scenario runs in a new pid namespace (tests/programs/reused_child_pid.py),
where ``ns_last_pid`` puts the other user's process on the freed pid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .security_support import User, arena, intruder, report_in_new_pid_namespace
from .support import program

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


def _scenario(kind: str, how: str, user: User, here: Path) -> dict[str, object]:
    return report_in_new_pid_namespace(
        program("reused_child_pid"), user.name, str(here), kind, how, timeout=180
    )


@pytest.mark.parametrize("how", ["second-sigterm", "stop"])
@pytest.mark.parametrize("kind", ["forkserver", "broken-pool"])
def test_a_forced_exit_spares_another_users_process_on_a_stale_child_pid(
    arena: Path, intruder: User, kind: str, how: str
) -> None:
    """The other user's process runs on; the daemon's own child is killed (and named)."""
    report = _scenario(kind, how, intruder, arena)
    assert report["victim_uid"] == intruder.uid  # the stale pid is the other user's process
    assert report["status"] == (143 if how == "second-sigterm" else 4), report.get("stop_said")
    assert report["victim"] == "running"
    assert report["own_child_gone"] is True
    records = report["records"]
    assert isinstance(records, list)
    killed = [r for r in records if r["event"] == "child process killed at exit"]
    if how == "stop":
        # Past the budget, what is killed is named first: the own child alone.
        assert [(r["process"], r["child_pid"]) for r in killed] == [("own-child", report["own"])]
    assert all(r["child_pid"] != report["stale"] for r in killed)
    forced = [r for r in records if r["event"] == "forced exit"]
    assert len(forced) == 1
