"""Syslog over UDP while the collector is away (audit-verify F3): records wait, none vanish.

A connected UDP socket learns of a collector that is gone from the ICMP
"port unreachable" it gets back (at once on loopback); the daemon keeps the
refused datagram and what follows until the collector answers again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from pathlib import Path

from .support import free_port, program, python, read_json_lines, read_pid, wait_for, wait_gone
from .syslog_support import UdpCollector


def _ticks(log: Path) -> list[int]:
    return [int(str(r["n"])) for r in read_json_lines(log) if r["event"] == "tick"]


def test_udp_syslog_records_wait_for_a_collector_that_comes_back(tmp_path: Path) -> None:
    """Collector gone for a while, then back: every tick arrives once, in order, none lost."""
    collector = UdpCollector(free_port(socket.SOCK_DGRAM))
    collector.start()
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    options = {
        "detach": True,
        "pidfile": str(pidfile),
        "log_file": str(log),
        "syslog": f"udp://127.0.0.1:{collector.port}",
    }
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(collector.stop)
        started = python([program("security_daemon"), json.dumps(options)])
        assert started.returncode == 0, started.stderr
        pid = read_pid(pidfile)
        cleanup.callback(wait_gone, pid)
        cleanup.callback(os.kill, pid, signal.SIGTERM)
        wait_for(lambda: len(collector.ticks()) > 3, what="ticks at the collector")
        collector.stop()
        down = max(_ticks(log))
        wait_for(lambda: max(_ticks(log)) > down + 25, what="ticks while the collector is down")
        collector.start()
        back = max(_ticks(log))
        wait_for(lambda: max(collector.ticks(), default=-1) > back, what="the waiting ticks")
    ticks = collector.ticks()
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "ticks lost or reordered"
    assert ticks[0] == 0
    events = [r["event"] for r in read_json_lines(log)]
    assert "syslog records lost" not in events
    assert "syslog records lost" not in [r["event"] for r in collector.records()]
