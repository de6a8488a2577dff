"""Logging end to end: real daemons started with aiodaemon.run, rotated by logrotate."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.support import (
    open_fds,
    python,
    read_json_lines,
    read_pid,
    run_logrotate,
    wait_for,
    wait_gone,
    write_script,
)
from tests.test_logging import REQUIRED_KEYS, line_count, numbers

TICKING_DAEMON = """\
import asyncio, logging, sys
import structlog
import aiodaemon

log = structlog.get_logger()

async def main():
    n = 0
    while True:
        log.info("tick", n=n)
        logging.getLogger("app.stdlib").info("stdlib tick %d", n)
        n += 1
        await asyncio.sleep(0.002)

aiodaemon.run(main, pidfile=sys.argv[1], log_file=sys.argv[2], detach=True)
"""


def test_daemon_log_survives_logrotate(tmp_path: Path) -> None:
    """A detached daemon rotated twice by logrotate: JSON lines, every tick once, in order."""
    pidfile, log_file = tmp_path / "d.pid", tmp_path / "d.log"
    app = write_script(tmp_path, TICKING_DAEMON)
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


STALLED_DAEMON = """\
import asyncio, json, sys, time
import structlog
import aiodaemon

log = structlog.get_logger()

async def main():
    lag, ticks = 0.0, 0
    try:
        while True:
            for n in range(50):
                log.info("tick", n=n, padding="x" * 500)
            before = time.monotonic()
            await asyncio.sleep(0.001)
            lag = max(lag, time.monotonic() - before - 0.001)
            ticks += 1
            if ticks == 100:  # 2.5 MB logged: the 64 kB pipe is long full
                open(sys.argv[3] + ".stalled", "w").close()
    finally:
        with open(sys.argv[3], "w") as f:
            json.dump({"max_lag": lag, "ticks": ticks}, f)

aiodaemon.run(
    main, pidfile=sys.argv[1], log_file=sys.argv[2], detach=True, shutdown_timeout=3
)
"""


def test_a_stalled_log_fifo_neither_stalls_nor_hangs_the_daemon(tmp_path: Path) -> None:
    """With log_file a FIFO nobody reads, the loop keeps running and SIGTERM still ends it."""
    pidfile, fifo, report = tmp_path / "d.pid", tmp_path / "d.log", tmp_path / "report.json"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read
    try:
        app = write_script(tmp_path, STALLED_DAEMON)
        started = python([app, pidfile, fifo, report])
        assert started.returncode == 0, started.stderr
        pid = read_pid(pidfile)
        wait_for(Path(f"{report}.stalled").exists, what="the daemon logging into a full pipe")
        stopped_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid, timeout=20)
        took = time.monotonic() - stopped_at
    finally:
        os.close(reader)
    result = json.loads(report.read_text())
    assert result["ticks"] >= 50
    assert result["max_lag"] < 0.5, result
    # shutdown_timeout=3 bounds the whole exit, the stalled drain included.
    assert took < 3 + 5
