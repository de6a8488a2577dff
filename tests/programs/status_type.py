"""A program that hands ``ctx.set_status()`` an int, from main or from a thread.

argv: options (JSON), record, case: ``main`` (main calls ``ctx.set_status(42)``),
``thread`` (a thread of the program's does, records the error it gets, then
asks for the shutdown) or ``sd_notify`` (main calls ``aiodaemon.sd_notify`` with
bytes).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import aiodaemon
from tests.programs.recorder import record, run

CASE = sys.argv[3]
#: What the program passes: a count where a text was meant (typed Any, as from a dict).
COUNT: Any = 42
#: A message as bytes, as some other sd_notify libraries take it.
MESSAGE: Any = b"STATUS=warming the cache"


def worker(ctx: aiodaemon.Context) -> None:
    try:
        ctx.set_status(COUNT)
    except TypeError as exc:
        record(f"TypeError: {exc}")
    ctx.request_shutdown()


async def main(ctx: aiodaemon.Context) -> None:
    if CASE == "sd_notify":
        aiodaemon.sd_notify(MESSAGE)
        record("notified")  # main then returns: exit 0 without the TypeError
        return
    if CASE == "main":
        ctx.set_status(COUNT)
        record("status set")  # main then returns: exit 0 without the TypeError
        return
    threading.Thread(target=worker, args=(ctx,), name="worker").start()
    await ctx.wait_stopping()


run(main)
