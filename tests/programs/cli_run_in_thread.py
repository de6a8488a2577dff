"""A TARGET whose main calls ``aiodaemon.run()`` from a thread, which is refused there.

The thread logs the RuntimeError it got (``thread refused``); a shutdown
hook logs that it ran (``shutdown hook ran``).
"""

from __future__ import annotations

import threading

import structlog

import aiodaemon

log = structlog.get_logger("app")


@aiodaemon.on_shutdown
async def goodbye() -> None:
    log.info("shutdown hook ran")


async def other() -> None:
    pass


def worker() -> None:
    try:
        aiodaemon.run(other)
    except RuntimeError as exc:
        log.info("thread refused", error=str(exc))


async def main(ctx: aiodaemon.Context) -> None:
    thread = threading.Thread(target=worker, name="helper")
    thread.start()
    await ctx.wait_stopping()
    thread.join()
