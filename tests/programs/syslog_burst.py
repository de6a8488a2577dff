"""A daemon that logs a burst of numbered records to syslog, then returns from main.

argv: the syslog target, the number of records. Prints ``logged N`` on
stdout once every record is handed to the writer, and waits for a line on
stdin before returning (so a test can hold the collector back meanwhile).
"""

from __future__ import annotations

import asyncio
import sys

import structlog

import aiodaemon

log = structlog.get_logger("burst")


async def main() -> None:
    """Log the records as fast as the loop can, then wait for the go-ahead."""
    count = int(sys.argv[2])
    for n in range(count):
        log.info("tick", n=n)
    print(f"logged {count}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    aiodaemon.run(main, syslog=sys.argv[1], detach=False)
