"""A start that times out while its daemon is suspended (SIGSTOP): it is continued and stops.

The launcher sent SIGTERM alone: stopped, the daemon ran none of its shutdown,
and the SIGKILL a shutdown timeout later ended it, blaming "its event loop
blocked?", its log without its ``not ready`` and ``exit`` records.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .support import proc_state, read_json_lines, wait_for, wait_gone
from .test_launcher_lets_go import SlowStart


def test_a_start_timing_out_on_a_suspended_daemon_continues_it_and_says_it_was(
    tmp_path: Path,
) -> None:
    """Exit 1 naming SIGSTOP, no SIGKILL; the daemon logs its timeout and its exit, files gone."""
    log = tmp_path / "log.jsonl"
    start = SlowStart(tmp_path, "--log-file", log, "--start-timeout", "3",
                      "--shutdown-timeout", "2")  # fmt: skip
    try:
        os.kill(start.pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(start.pid) in ("T", None), 10, "the daemon to be stopped")
        code, err = start.finish()
    finally:
        if proc_state(start.pid) is not None:
            os.kill(start.pid, signal.SIGCONT)
    wait_gone(start.pid)
    assert (code, err) == (
        1,
        f"aiodaemon: not ready after 3 s (pid {start.pid} was suspended (SIGSTOP))\n",
    )
    events = [r["event"] for r in read_json_lines(log)]
    assert "not ready after 3 s" in events
    assert events[-1] == "exit"
    assert not start.pidfile.exists()
