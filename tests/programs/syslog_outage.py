"""A foreground daemon (argv: its options as JSON) whose records outgrow a syslog backlog.

It logs 40,000 ``burst`` records at once (more than the 32,768 messages kept
for a collector that is down), then 300 ``trickle`` records 2 ms apart (each
its own batch for the writer), then returns.
"""

from __future__ import annotations

import asyncio
import json
import sys

import structlog

import aiodaemon

log = structlog.get_logger("outage")


async def main() -> None:
    """Burst, trickle, return."""
    for n in range(40_000):
        log.info("burst", n=n)
        if n % 1000 == 999:
            await asyncio.sleep(0.01)  # the queue holds 32,768: let the writer keep up
    for n in range(300):
        log.info("trickle", n=n)
        await asyncio.sleep(0.002)


if __name__ == "__main__":
    aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
