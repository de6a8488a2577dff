"""A foreground daemon that logs a burst of numbered records, then waits for the go-ahead.

argv[1]: the options as JSON (``syslog`` and ``log_file``); argv[2]: how many
records. Prints ``logged N`` on stdout once every record is handed to the
writer, and returns from main at a line on stdin, so a test can hold the
collector back, and reset its connection, meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import sys

import structlog

import aiodaemon

log = structlog.get_logger("burst")


async def main() -> None:
    """Log the records as fast as the loop can, then wait for the go-ahead."""
    count = int(sys.argv[2])
    for n in range(count):
        log.info("tick", n=n, pad="x" * 200)
    print(f"logged {count}", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
