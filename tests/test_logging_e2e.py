"""Logging end to end: real daemons started with aiodaemon.run, rotated by logrotate."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

from tests.support import (
    open_fds,
    proc_status,
    program,
    python,
    read_json_lines,
    read_pid,
    run_logrotate,
    wait_for,
    wait_gone,
)
from tests.test_logging import REQUIRED_KEYS, line_count, numbers


def test_daemon_log_survives_logrotate(tmp_path: Path) -> None:
    """A detached daemon rotated twice by logrotate: JSON lines, every tick once, in order."""
    pidfile, log_file = tmp_path / "d.pid", tmp_path / "d.log"
    app = program("log_ticking_daemon")
    started = python([app, pidfile, log_file])
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    config = tmp_path / "logrotate.conf"
    config.write_text(
        f"{log_file} {{\n    create\n    rotate 5\n    postrotate\n"
        f"        kill -USR1 $(cat {pidfile})\n    endscript\n}}\n"
    )
    try:
        for _ in range(2):
            wait_for(lambda: line_count(log_file) >= 10, what="ticks in the current file")
            run_logrotate(config, tmp_path / "state")
        wait_for(lambda: line_count(log_file) >= 10, what="ticks after the last rotation")
        assert not any(".log." in target for target in open_fds(pid).values())
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    files = [tmp_path / "d.log.2", tmp_path / "d.log.1", log_file]
    records = [r for f in files for r in read_json_lines(f)]
    assert all(set(r) >= REQUIRED_KEYS for r in records)
    assert {r["pid"] for r in records} == {pid}
    ticks = [n for f in files for n in numbers(f)]
    assert ticks == list(range(len(ticks)))
    stdlib = [r["event"] for r in records if r["logger"] == "app.stdlib"]
    assert stdlib == [f"stdlib tick {n}" for n in range(len(stdlib))]
    assert len(stdlib) >= len(ticks) - 1
    # The lifecycle is logged too, and the last line is written before the daemon exits.
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0


def test_a_stalled_log_sink_neither_stalls_nor_hangs_the_daemon(tmp_path: Path) -> None:
    """Syslog a stream socket nobody reads: the loop keeps running and SIGTERM still ends it."""
    # (A FIFO as log_file is refused since it could stall or redirect us; a
    # syslog daemon that stops reading is the stalled sink a daemon really meets.)
    pidfile, report = tmp_path / "d.pid", tmp_path / "report.json"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "syslog.sock"))
    server.listen()  # connections queue in the backlog, never accepted nor read
    try:
        app = program("log_stalled_daemon")
        started = python([app, pidfile, tmp_path / "syslog.sock", report])
        assert started.returncode == 0, started.stderr
        pid = read_pid(pidfile)
        wait_for(Path(f"{report}.stalled").exists, what="the daemon logging into a full socket")
        wait_for(Path(f"{report}.full").exists, what="the writer's queue filling up")
        # The full queue (32,768 records of ~560 bytes, ~18 MB) and the syslog
        # backlog stay near their documented size: each record is held at its
        # own size, not in the 4-8 KB output buffer orjson returns it in
        # (which made this daemon grow past 200 MB).
        rss_mb = int(proc_status(pid)["VmRSS"].split()[0]) / 1024
        assert rss_mb < 120, f"{rss_mb:.0f} MB resident with a stalled sink"
        os.kill(pid, signal.SIGTERM)
        # shutdown_timeout=3 bounds the whole exit, the stalled drain included: a drain
        # waiting for the stalled socket would never end.
        wait_gone(pid, timeout=20)
    finally:
        server.close()
    result = json.loads(report.read_text())
    # The loop kept ticking while the sink was stalled for good.
    assert result["ticks"] >= 50
