"""Several ``stop`` at once of a daemon over signals alone send it one SIGTERM, however many.

The first ``stop`` claims the SIGTERM through an abstract unix socket it
listens on but never accepts from; each other ``stop`` connects to it to see
who holds it (``SO_PEERCRED``). Those connections stay queued until the
claimer exits: with a backlog of 1, the third ``stop`` found the queue full,
could not tell who held the claim, and sent the SIGTERM that forces the exit.
"""

from __future__ import annotations

from .control_support import open_control_app
from .support import wait_for


def test_four_stops_of_a_daemon_without_control_socket_send_one_sigterm() -> None:
    """One SIGTERM: the shutdown hooks run to their end, exit 0, every stop says 'stopped'."""
    with open_control_app() as app:
        pid = app.start("--no-control")
        app.steer("shutdown", "wait")
        first = app.watch("stop", "--pidfile", app.pidfile)
        others = []
        try:
            wait_for(lambda: app.records("shutdown started"), 30, "the first stop's SIGTERM")
            waiting = (
                f"aiodaemon: already stopping (pid {pid}; `aiodaemon stop` pid {first.proc.pid}"
            )
            for _ in range(3):
                # One after the other: each one's probe stays queued on the claim.
                others.append(app.watch("stop", "--pidfile", app.pidfile))
                wait_for(lambda: others[-1].said(waiting), 30, "the stop waiting")
            app.steer("shutdown-release")
            results = [first.finish()] + [other.finish() for other in others]
        finally:
            app.steer("shutdown-release")
            first.kill()
            for other in others:
                other.kill()
        for code, _, lines in results:
            assert code == 0, lines
            assert lines[-1] == f"aiodaemon: stopped (pid {pid})"
        assert len(app.records("signal received")) == 1
        assert app.records("forced exit") == []
        assert [r.get("status") for r in app.records("exit")] == [0]
