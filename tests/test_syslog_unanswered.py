"""A TCP syslog collector whose host never answers the handshake (a firewall
dropping it, a host that is down): the other sinks and the exit do not wait on it.

The writer thread, shared by every sink, connected with a 5 s timeout, twice
per attempt: the log file lagged 10 s behind the program (and dropped what
did not fit the queue meanwhile), and a stop waited on the connect until the
drain gave up at the end of the shutdown budget, losing the last records. A
real daemon, a real listener whose accept queue is full (the kernel then drops
new handshakes unanswered).
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .support import read_json_lines, spawn_program, wait_for


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A local port whose handshakes get no answer: its listener's accept queue is full."""
    with ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=0))
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))

        def unanswered() -> bool:
            with socket.socket() as probe:
                probe.settimeout(0.3)
                return probe.connect_ex(("127.0.0.1", port)) != 0

        wait_for(unanswered, 10, "a full accept queue")
        yield port


def test_an_unanswered_collector_holds_up_neither_the_log_file_nor_the_exit(
    tmp_path: Path,
) -> None:
    """Every record in the file, the last one saying how many syslog never got."""
    log_file = tmp_path / "app.jsonl"
    with unanswered_port() as port:
        # The exit drains the log within the shutdown budget: 2 s, less than one connect's wait.
        options = {
            "syslog": f"tcp://127.0.0.1:{port}",
            "log_file": str(log_file),
            "shutdown_timeout": 2.0,
        }
        daemon = spawn_program("syslog_ticker", json.dumps(options))
        try:
            wait_for(
                lambda: log_file.exists() and log_file.read_text().count('"tick"') >= 20,
                30,
                "20 ticks in the log file",
            )
            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 0, stderr
    *written, notice = read_json_lines(log_file)
    assert written[-1]["event"] == "exit"
    ticks = [r["n"] for r in written if r["event"] == "tick"]
    assert ticks == list(range(len(ticks)))
    # The drain reached its end: nothing went to syslog, and the count says so.
    assert notice["event"] == "syslog records lost"
    assert notice["lost"] == len(written)
