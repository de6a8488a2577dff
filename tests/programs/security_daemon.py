"""A daemon for the security tests: ``run()`` options as JSON in argv[1].

It logs a ``tick`` every 20 ms, so a test sees where records go after a
reopen, and writes ``<argv[2]>`` (if given) once its startup hook ran, so a
test can tell that a refused start never got that far. ``main`` also serves
as a CLI target (``tests.programs.security_daemon:main``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger("security")

#: Where the startup hook leaves its mark (run as a script with a second argument).
MARK: Path | None = None


def _leave_mark() -> None:
    if MARK is not None:
        MARK.write_text("started\n")


@aiodaemon.on_startup
async def started() -> None:
    """Leave a mark that the daemon got as far as its startup hooks (a tiny local write)."""
    _leave_mark()


async def main() -> None:
    """Tick until stopped."""
    n = 0
    while True:
        log.info("tick", n=n)
        n += 1
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        MARK = Path(sys.argv[2])
    aiodaemon.run(main, **json.loads(sys.argv[1]))
