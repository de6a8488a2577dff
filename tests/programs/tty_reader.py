"""A foreground daemon that reads one line from its terminal, prints it, and waits to be stopped.

argv: a log file. Run as PID 1 on a pseudo-terminal by tests/test_pid1_tty.py.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon


async def main(ctx: aiodaemon.Context) -> None:
    print("ready for a line", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    print(f"got {line.strip()}", flush=True)
    await ctx.wait_stopping()


aiodaemon.run(main, log_file=sys.argv[1])
