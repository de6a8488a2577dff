"""A thread of the program's calls the Context's requests.

argv: options (JSON), record, case: ``shutdown`` (the thread calls
``ctx.request_shutdown(3)``), ``reload`` (``ctx.request_reload()``) or
``after`` (main returns; once ``run()`` is over, every request is made from the
main thread, then the process exits 0). main waits for the stop; the hooks
record that they ran.
"""

from __future__ import annotations

import sys
import threading

import aiodaemon
from tests.programs.recorder import record, run

CASE = sys.argv[3]


@aiodaemon.on_reload
async def reload() -> None:
    record("reload hook")


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")


def worker(ctx: aiodaemon.Context) -> None:
    if CASE == "shutdown":
        ctx.request_shutdown(3)
    else:
        ctx.request_reload()
    record("thread asked")


kept: list[aiodaemon.Context] = []


async def main(ctx: aiodaemon.Context) -> None:
    if CASE == "after":
        kept.append(ctx)
        return
    thread = threading.Thread(target=worker, args=(ctx,), name="worker")
    thread.start()
    await ctx.wait_stopping()
    record("main saw stopping")


try:
    run(main)
except SystemExit:
    if CASE != "after":
        raise
(ctx,) = kept
ctx.notify_ready()
ctx.set_status("after the run")
ctx.request_reload()
ctx.request_shutdown(5)
record(f"after the run: {ctx.state.value}")
