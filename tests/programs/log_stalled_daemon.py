"""A detached daemon logging hard into a stalled sink (argv: pidfile, syslog socket, report)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    lag, ticks = 0.0, 0
    try:
        while True:
            for n in range(50):
                log.info("tick", n=n, padding="x" * 500)
            before = time.monotonic()
            await asyncio.sleep(0.001)
            lag = max(lag, time.monotonic() - before - 0.001)
            ticks += 1
            if ticks == 100:  # 2.5 MB logged: the socket buffer is long full
                Path(sys.argv[3] + ".stalled").touch()
            if ticks == 1000:  # 50,000 records: the writer's queue (32,768) is full too
                Path(sys.argv[3] + ".full").touch()
    finally:
        Path(sys.argv[3]).write_text(json.dumps({"max_lag": lag, "ticks": ticks}))


aiodaemon.run(main, pidfile=sys.argv[1], syslog=sys.argv[2], detach=True, shutdown_timeout=3)
