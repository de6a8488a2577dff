"""Run as PID 1's daemon: makes orphans, records a subprocess status (argv: the record file)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiodaemon

RECORD = sys.argv[1]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


async def main(ctx: aiodaemon.Context) -> None:
    record(f"pid {ctx.pid}")
    # Orphans: each shell exits at once, leaving its background sleep to init.
    for _ in range(5):
        subprocess.run(["sh", "-c", "sleep 0.2 & exit 0"], check=True)
    # The daemon's own subprocesses keep their exit status.
    proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
    record(f"subprocess {await proc.wait()}")
    await ctx.wait_stopping()
    record("stopping")


aiodaemon.run(main)
