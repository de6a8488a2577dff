"""The Context's requests from a thread of the program's reach the daemon's loop.

Before, ``ctx.request_shutdown()`` from a thread moved the state machine to
STOPPING, then failed there (no running event loop in that thread) before the
shutdown began: the daemon ran on for ever, and every later SIGTERM only
"joined" a shutdown that never ran (SIGKILL was the way out).
"""

from __future__ import annotations

import signal
from pathlib import Path

from .support import ForegroundDaemon


def test_request_shutdown_from_a_thread_stops_the_daemon(tmp_path: Path) -> None:
    """ctx.request_shutdown(3) in a thread: the shutdown runs, exit 3."""
    pidfile = tmp_path / "d.pid"
    d = ForegroundDaemon(tmp_path, "ctx_thread", "shutdown", pidfile=str(pidfile))
    try:
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 3, err
    # The thread records after its request returns: a loaded machine may run
    # the whole shutdown (main, then the hook) before the thread's next line.
    recorded = d.recorded()
    assert sorted(recorded) == ["main saw stopping", "shutdown hook", "thread asked"]
    assert recorded.index("main saw stopping") < recorded.index("shutdown hook")
    (asked,) = [r for r in d.lines() if r["event"] == "shutdown requested by the program"]
    assert asked["status"] == 3
    assert d.events()[-1] == "exit"
    assert not pidfile.exists()


def test_request_reload_from_a_thread_reloads(tmp_path: Path) -> None:
    """ctx.request_reload() in a thread: one reload runs; SIGTERM then stops the daemon, 0."""
    d = ForegroundDaemon(tmp_path, "ctx_thread", "reload")
    try:
        d.wait_event("reload finished")
        d.signal(signal.SIGTERM)
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert "reload hook" in d.recorded()
    (finished,) = [r for r in d.lines() if r["event"] == "reload finished"]
    assert finished["ok"] is True
    assert "unhandled exception in event loop" not in d.events()


def test_requests_after_the_run_do_nothing(tmp_path: Path) -> None:
    """The Context's requests once run() is over: nothing happens, nothing is printed."""
    d = ForegroundDaemon(tmp_path, "ctx_thread", "after")
    try:
        out, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert (out, err) == ("", "")
    assert d.recorded() == ["shutdown hook", "after the run: stopped"]
    assert "status" not in d.events()
