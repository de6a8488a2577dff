"""A foreground daemon whose shutdown logs far more than its stderr pipe holds.

argv: options JSON (``pidfile``, ``control``...). Logging to stderr, which the
test does not read until it is done: after the shutdown sequence (its control
socket closed) the log writer's last drain waits on the full pipe, and so does
the release of the pidfile. What ``status`` and ``stop`` say then is the point.
"""

from __future__ import annotations

import json
import sys

import structlog

import aiodaemon


@aiodaemon.on_shutdown
async def flood() -> None:
    """Far more than a pipe holds (64 KiB): the log writer blocks on its sink."""
    log = structlog.get_logger("filler")
    for i in range(2000):
        log.info("filler", n=i, padding="x" * 100)


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()


aiodaemon.run(main, detach=False, log_format="json", **json.loads(sys.argv[1]))
