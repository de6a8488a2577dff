"""What every logging child does first: open the targets and start logging like a daemon.

argv[1] holds the options as JSON. LOG_CHILD_DETACHED ("0" for a foreground
child, default "1") and LOG_CHILD_QUEUE_SIZE (default 32768) shape the writer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from aiodaemon._logs._logging import start_logging
from aiodaemon._logs._logwriter import LogWriter
from aiodaemon._prefork._config import parse_options
from aiodaemon._prefork._logsinks import open_log_targets


def start_child() -> LogWriter:
    """Open the log targets named by argv[1] and start logging; the writer."""
    options = parse_options(json.loads(sys.argv[1]))
    targets = open_log_targets(options)
    return start_logging(
        targets,
        options,
        detached=os.environ.get("LOG_CHILD_DETACHED", "1") != "0",
        queue_size=int(os.environ.get("LOG_CHILD_QUEUE_SIZE", "32768")),
    )


def stall(log: Any, writer: LogWriter) -> None:
    """Log 2,000 padded records while a ticker measures loop lag; print lag, ticks, drops."""

    async def main() -> tuple[float, int]:
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.001)
                lags.append(time.monotonic() - before - 0.001)

        task = asyncio.create_task(ticker())
        for n in range(2000):
            log.info("tick", n=n, padding="x" * 1000)
            if n % 20 == 0:
                await asyncio.sleep(0.001)
        task.cancel()
        return max(lags), len(lags)

    max_lag, ticks = asyncio.run(main())
    report = {"max_lag": max_lag, "ticks": ticks, "dropped": writer.dropped}
    print(json.dumps(report), flush=True)
