"""A daemon whose startup hook forks a child that sleeps: multiprocessing (fork) or os.fork().

argv: options (JSON), record, ``mp`` or ``fork``. Records ``child PID``; the
reload hook records ``reload``, the shutdown hook ``shutdown``, a SIGWINCH
handler ``winch`` (a barrier for the test: signals sent before it are handled).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

import aiodaemon
from tests.programs.recorder import record, run

KIND = sys.argv[3]
#: Kept referenced, as a program keeps its worker.
children: list[multiprocessing.process.BaseProcess] = []


def sleep_long() -> None:
    time.sleep(3600)


@aiodaemon.on_startup
async def start_child() -> None:
    if KIND == "mp":
        child = multiprocessing.get_context("fork").Process(target=sleep_long, daemon=True)
        child.start()
        children.append(child)
        pid = child.pid
    else:
        pid = os.fork()
        if pid == 0:
            try:
                sleep_long()
            finally:
                os._exit(0)
    record(f"child {pid}")


@aiodaemon.on_reload
async def reloaded() -> None:
    record("reload")


@aiodaemon.on_shutdown
async def stopping() -> None:
    record("shutdown")


@aiodaemon.on_signal(signal.SIGWINCH)
async def winch() -> None:
    record("winch")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


run(main)
