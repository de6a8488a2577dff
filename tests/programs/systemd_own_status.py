"""Startup and reload hooks set their own status.

argv: the log file, a file failing reloads, and optionally a pidfile (to upgrade it).
"""

from __future__ import annotations

import os
import sys

import aiodaemon

reloads = 0


@aiodaemon.on_startup
async def load(ctx: aiodaemon.Context) -> None:
    ctx.set_status("loaded 42 rules")


@aiodaemon.on_reload
async def reload(ctx: aiodaemon.Context) -> None:
    global reloads
    reloads += 1
    ctx.set_status(f"config v{reloads} loaded")
    if os.path.exists(sys.argv[2]):
        raise RuntimeError("bad config")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1], pidfile=sys.argv[3] if sys.argv[3:] else None)
