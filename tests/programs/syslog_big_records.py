"""A foreground daemon (argv: its options as JSON) logging 400 records of 64 KiB each.

Each is sent to syslog as nine messages: 3,600 messages, well under the
backlog's 32,768, but 26 MiB, past its 16 MiB. Then it logs ``done`` and returns.
"""

from __future__ import annotations

import asyncio
import json
import sys

import structlog

import aiodaemon

log = structlog.get_logger("big")


async def main() -> None:
    """Big records, a few at a time, then done."""
    text = "x" * 65_536
    for n in range(400):
        log.info("big", n=n, text=text)
        if n % 20 == 19:
            await asyncio.sleep(0.01)  # a batch at a time for the writer
    log.info("done")


if __name__ == "__main__":
    aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
