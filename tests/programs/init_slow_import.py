"""A CLI target whose import blocks (a heavy program's imports) until the test lets it go.

Environment: ``RECORD`` (a file: "importing" once blocked) and ``GATE`` (a FIFO:
the import goes on once the test opens it for writing).
"""

from __future__ import annotations

import os

import aiodaemon

with open(os.environ["RECORD"], "a") as record:
    record.write("importing\n")
with open(os.environ["GATE"]) as gate:
    pass


async def main(ctx: aiodaemon.Context) -> None:
    with open(os.environ["RECORD"], "a") as f:
        f.write("running\n")
    await ctx.wait_stopping()
