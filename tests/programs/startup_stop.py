"""A startup hook that blocks the loop or asks for the shutdown, as the test says.

argv: options (JSON), record, case. ``block``: the hook records ``startup
begun``, then blocks the event loop (``time.sleep`` steps, as a synchronous
config load would) until the test creates the record's path plus ``.go``, and
records ``startup returned``; ``request:`` / ``request:N``: the hook calls
``ctx.request_shutdown()`` / ``ctx.request_shutdown(N)`` and returns. ``main``
and the shutdown hook record that they ran.
"""

from __future__ import annotations

import sys

import aiodaemon
from tests.programs.recorder import record, run, wait_for_file

WHAT, _, ARG = sys.argv[3].partition(":")


@aiodaemon.on_startup
async def load_config(ctx: aiodaemon.Context) -> None:
    record("startup begun")
    if WHAT == "block":
        wait_for_file(sys.argv[2] + ".go")  # blocks the loop: no await
        record("startup returned")
    elif ARG:
        ctx.request_shutdown(int(ARG))
    else:
        ctx.request_shutdown()


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")


async def main(ctx: aiodaemon.Context) -> None:
    record("main")
    await ctx.wait_stopping()


run(main)
