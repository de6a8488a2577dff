"""A daemon whose shutdown hook starts a command and does not wait for it.

argv: options JSON, the record file, how long the command sleeps (the test
makes it unique, to find the process). ``main`` records ``running`` and waits
for the stop; the shutdown hook starts ``sleep`` in a task of its own (its
standard streams on pipes, as for ``communicate()``), which the shutdown's last
step finds in the middle of ``asyncio.create_subprocess_exec``.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon
from tests.programs.recorder import record, run


async def announce() -> None:
    proc = await asyncio.create_subprocess_exec(
        "sleep",
        sys.argv[3],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await proc.communicate()


@aiodaemon.on_shutdown
async def stopping() -> None:
    asyncio.get_running_loop().create_task(announce(), name="announce")


async def main(ctx: aiodaemon.Context) -> None:
    record("running")
    await ctx.wait_stopping()


run(main)
