"""A foreground daemon whose status and reload error hold a file name that is not UTF-8.

argv[1]: the log file. ``main`` sets its status to ``serving <name>``; every
reload fails with ``RuntimeError: bad config <name>`` and a NUL. The name's
byte 0xE9 is not UTF-8: Python holds it as the surrogate U+DCE9.
"""

from __future__ import annotations

import os
import sys

import aiodaemon

NAME = os.fsdecode(b"caf\xe9")


@aiodaemon.on_reload
async def reload() -> None:
    raise RuntimeError(f"bad config {NAME}\x00")


async def main(ctx: aiodaemon.Context) -> None:
    ctx.set_status(f"serving {NAME}")
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
