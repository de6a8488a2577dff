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
    # The child says what it inherited: its ignored signals.
    child = await asyncio.create_subprocess_exec(
        "sh", "-c", "grep SigIgn /proc/self/status; exit 7", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(child.communicate(), 10)
    code = child.returncode
    with open("/proc/self/status") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    with open(report_path + ".tmp", "w") as f:
        seen = {"child": code, "child_SigIgn": out.decode().split()[-1]}
        json.dump({**seen, "SigBlk": status["SigBlk"], "SigIgn": status["SigIgn"]}, f)
    os.rename(report_path + ".tmp", report_path)
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
