"""``stop`` of a daemon suspended with SIGSTOP (job control, a debugger gone, a frozen cgroup).

A stopped process keeps a SIGTERM pending: it never runs its shutdown, and
``stop`` SIGKILLed it at its deadline, its log records, shutdown hooks and
socket files lost. ``stop`` now continues it, as systemd does (``KillSignal=``,
then SIGCONT), so that it stops gracefully; before it asks, so that its stop
request is answered at once rather than after 5 s of waiting for an answer.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .support import (
    kill_quietly,
    proc_state,
    program,
    python,
    read_json_lines,
    wait_for,
    wait_gone,
)
from .test_upgrade import App, cli
from .test_upgrade_faults import app as app


def test_stop_of_a_suspended_daemon_stops_it_gracefully(app: App, tmp_path: Path) -> None:
    """SIGSTOPped: ``stop`` continues it, asks, and the daemon runs its shutdown, exit 0."""
    health = tmp_path / "health.sock"
    pid = app.start("--health", f"unix:{health}")
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
    stopped = cli("stop", "--pidfile", str(app.pidfile), "--timeout", "20")
    assert stopped.returncode == 0, stopped.stderr
    # Answered: no "no answer from pid N within 5 s; sending SIGTERM" first.
    assert stopped.stderr == f"aiodaemon: stopped (pid {pid})\n"
    wait_gone(pid)
    [end] = app.records("exit")
    assert end["status"] == 0
    assert app.records("shutdown finished")
    # Removed by the daemon itself: a SIGKILL left the health socket behind.
    assert not health.exists()
    assert not app.pidfile.exists()


@contextmanager
def suspended_in_shutdown(
    tmp_path: Path, *, control: bool = True
) -> Iterator[tuple[int, Path, Path, Path]]:
    """A held_shutdown daemon SIGSTOPped in its shutdown: (pid, pidfile, log, release file).

    At the end its shutdown is released, it is continued and waited for.
    """
    pidfile, log, release = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "release"
    options: dict[str, object] = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "listen": {"http": "127.0.0.1:0"},
    }
    if not control:
        options["control"] = False
    started = python([program("held_shutdown"), json.dumps(options), release])
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
        # Its shutdown hook waits for the release: the shutdown has begun.
        wait_for(
            lambda: any(r["event"] == "stopped accepting" for r in read_json_lines(log)),
            what="the shutdown to begin",
        )
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
        yield pid, pidfile, log, release
    finally:
        release.touch()
        kill_quietly(pid, signal.SIGCONT)
        wait_gone(pid)


def test_stop_of_a_daemon_suspended_while_it_stops_lets_it_finish(tmp_path: Path) -> None:
    """SIGSTOPped in its shutdown: ``stop`` waits ("already stopping"), and it finishes (0)."""
    with suspended_in_shutdown(tmp_path) as (pid, pidfile, log, release):
        # What it waits for is there; it sees it once it runs again.
        release.touch()
        stopped = cli("stop", "--pidfile", str(pidfile), "--timeout", "5")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == (
        f"aiodaemon: already stopping (pid {pid}); waiting\naiodaemon: stopped (pid {pid})\n"
    )
    [end] = [r for r in read_json_lines(log) if r["event"] == "exit"]
    assert end["status"] == 0
