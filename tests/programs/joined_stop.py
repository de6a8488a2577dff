"""A daemon whose shutdown hook waits for the test's go-ahead; what begins its shutdown is chosen.

argv: options (JSON), record, release file, how ``main`` ends: ``return``,
``raise``, ``request`` (``ctx.request_shutdown(5)``), ``signalled-request``
(the same, just after a SIGTERM to itself, unread by the loop yet) or ``wait``
(until stopped from outside: ``aiodaemon stop``); a fifth argument ``block``
makes the hook wait in sync code, blocking the event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiodaemon
from tests.programs.recorder import record, run, wait_for_file

RELEASE, HOW = sys.argv[3], sys.argv[4]
BLOCK = sys.argv[5:] == ["block"]


@aiodaemon.on_shutdown
async def slow_hook() -> None:
    record("hook begin")
    if BLOCK:
        wait_for_file(RELEASE, timeout=60)
    else:
        await asyncio.to_thread(wait_for_file, RELEASE, 60)
    record("hook end")


async def main(ctx: aiodaemon.Context) -> None:
    record("main begin")
    if HOW == "raise":
        raise RuntimeError("main failed")
    if HOW == "signalled-request":
        # Delivered before kill() returns; the loop reads it on its next turn,
        # after the shutdown has begun (systemd's stop racing the program's own).
        os.kill(os.getpid(), signal.SIGTERM)
    if HOW in ("request", "signalled-request"):
        ctx.request_shutdown(5)
    if HOW in ("request", "signalled-request", "wait"):
        await ctx.wait_stopping()


run(main)
