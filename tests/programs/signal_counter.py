"""A daemon that records each reload and each SIGWINCH run, one line per run.

argv: options JSON, the record file (``reload`` or ``winch`` per line).
"""

from __future__ import annotations

import json
import signal
import sys

import aiodaemon

options = json.loads(sys.argv[1])
record = sys.argv[2]


def _note(what: str) -> None:
    with open(record, "a") as f:
        f.write(what + "\n")


@aiodaemon.on_reload
async def reload() -> None:
    _note("reload")


@aiodaemon.on_signal(signal.SIGWINCH)
async def winch() -> None:
    _note("winch")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
