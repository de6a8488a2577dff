"""Sync code blocks the loop while signals pour in.

SIGWINCH: records ``blocked``, then holds the loop (sync) until the test
creates ``gate`` beside the record file. SIGRTMIN+1: handled, records nothing.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import aiodaemon
from tests.programs.recorder import record, run, wait_for_file

GATE = str(Path(sys.argv[2]).with_name("gate"))


@aiodaemon.on_signal(signal.SIGWINCH)
async def block() -> None:
    record("blocked")
    # Sync on purpose: the loop stops turning, as under a blocking call.
    wait_for_file(GATE)


@aiodaemon.on_signal(signal.SIGRTMIN + 1)
async def realtime() -> None:
    pass


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
