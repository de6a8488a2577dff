"""A daemon whose ``main`` handles SIGRTMIN+3 itself, on the loop, counting each run.

argv: options JSON, a directory: ``blocking`` is written as ``main`` blocks the
loop for a second (the signals sent then queue up), ``runs`` gets a line per run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import aiodaemon

options = json.loads(sys.argv[1])
marks = Path(sys.argv[2])
RT = signal.SIGRTMIN + 3


def _ran() -> None:
    with open(marks / "runs", "a") as f:
        f.write("run\n")


async def main(ctx: aiodaemon.Context) -> None:
    asyncio.get_running_loop().add_signal_handler(RT, _ran)
    (marks / "blocking").write_text("1")
    time.sleep(1.0)  # the loop reads none of them meanwhile: they queue
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
