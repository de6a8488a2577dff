"""Prints a numbered 1 kB line every 20 ms on stdout (``main``) or stderr (``to_stderr``).

After each line it writes the count to ``printed`` next to itself (copied as
app.py): a test waits on that file, not on the log, which may be the failing
stderr file itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiodaemon

HERE = Path(__file__).parent

#: Bytes of each line past its number: a 256 kB disk fills in a few hundred lines.
FILLER = "x" * 1000


async def _print_forever(stream: str) -> None:
    n = 0
    while True:
        print(f"line {n} {FILLER}", file=getattr(sys, stream))
        n += 1
        # Replaced whole: a reader never sees a count half written.
        (HERE / "printed.new").write_text(str(n), encoding="ascii")
        os.replace(HERE / "printed.new", HERE / "printed")
        await asyncio.sleep(0.02)


async def main(ctx: aiodaemon.Context) -> None:
    await _print_forever("stdout")


async def to_stderr(ctx: aiodaemon.Context) -> None:
    await _print_forever("stderr")
