"""A child forked without exec that returns or raises into the daemon's code ends there.

Before, such a child went on in aiodaemon's code on a copy of the daemon's
event loop (whose epoll instance it shares): "internal task failed: no running
event loop", then it hung for ever, and its parent with it in ``waitpid``.
Forked in a thread pool's worker (``asyncio.to_thread``), it waited for ever for
the pool's next work item (or ran the parent's), holding the ``listen=``
sockets; forked in a ``threading.Thread``, the child's log writer kept it alive.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .support import ForegroundDaemon, wait_for

#: WHAT of ``tests/programs/fork_back.py``: the child's status, and how the line says it.
OUTCOMES = {
    "return": (0, "returned"),
    "raise": (1, "raised ValueError: the child's error"),
    "exit": (7, "sys.exit(7) in"),
    "await": (1, "awaits on the daemon's event loop"),
}


def child_status(d: ForegroundDaemon) -> tuple[int, int] | None:
    """The child's pid and exit status, once the parent recorded them."""
    for line in d.recorded():
        if line.startswith("child "):
            _, pid, status = line.split()
            return int(pid), int(status)
    return None


@pytest.mark.parametrize("use_uvloop", [None, False], ids=["default-loop", "asyncio"])
@pytest.mark.parametrize(
    ("where", "what"),
    [
        ("main", "return"),
        ("main", "raise"),
        ("main", "exit"),
        ("startup", "return"),
        ("task", "return"),
        ("task", "raise"),
        ("task", "await"),
        ("to_thread", "return"),
        ("to_thread", "raise"),
        ("to_thread", "exit"),
        ("pool", "return"),
        ("thread", "return"),
        ("thread", "raise"),
        ("thread", "exit"),
    ],
)
def test_the_child_ends_and_the_daemon_runs_on(
    tmp_path: Path, where: str, what: str, use_uvloop: bool | None
) -> None:
    """The child exits (0, 1 or its sys.exit status) with one line; the daemon is untouched."""
    pidfile = tmp_path / "d.pid"
    d = ForegroundDaemon(
        tmp_path, "fork_back", f"{where}:{what}", pidfile=str(pidfile), uvloop=use_uvloop
    )
    try:
        child, status = wait_for(lambda: child_status(d), what="the child's end")
        assert status == OUTCOMES[what][0]
        d.wait_event("ready")
        # The child ran none of the daemon's steps and left its files alone.
        assert pidfile.read_text() == f"{d.pid}\n"
        assert (tmp_path / "d.pid.ctl").exists()
        (came_back,) = [
            r for r in d.lines() if r["event"] == "forked child came back into the daemon"
        ]
        assert came_back["pid"] == came_back["child"] == child
        assert came_back["status"] == status
        d.signal(signal.SIGTERM)
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert [r["event"] for r in d.lines() if r["pid"] == child] == [
        "forked child came back into the daemon"
    ]
    assert d.recorded()[-1] == f"shutdown hook {d.pid}"
    assert sum(line.startswith("shutdown hook") for line in d.recorded()) == 1
    (line,) = [line for line in err.splitlines() if line.startswith("aiodaemon: forked child")]
    assert line.startswith(f"aiodaemon: forked child {child} came back into the daemon's code (")
    assert OUTCOMES[what][1] in line
    assert line.endswith(
        f"it exits with status {status}; a child forked without exec ends with os._exit()"
    )
    assert ("Traceback" in err) == (what == "raise")
    assert "internal" not in err
    assert not pidfile.exists()
    if where == "pool":
        # The work queued in the parent ran there, once, and never in the child.
        assert [line for line in d.recorded() if line.startswith("queued")] == [f"queued {d.pid}"]
    if where in ("to_thread", "pool", "thread"):
        assert "fork_in_thread() in thread '" in line
