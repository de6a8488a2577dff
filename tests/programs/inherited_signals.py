"""A daemon that reports the signal state it runs with and reaps a subprocess.

argv: options JSON, the report path. Started by tests through a wrapper that
blocks and ignores signals before ``exec``, as a careless starter would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiodaemon

options = json.loads(sys.argv[1])
report_path = sys.argv[2]


async def main(ctx: aiodaemon.Context) -> None:
    child = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
    code = await asyncio.wait_for(child.wait(), 10)
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    with open(report_path + ".tmp", "w") as f:
        json.dump({"child": code, "SigBlk": status["SigBlk"], "SigIgn": status["SigIgn"]}, f)
    os.rename(report_path + ".tmp", report_path)
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
