"""A TARGET that ends with status 3 where ``EXIT_WHERE`` says.

``main`` (``sys.exit(3)`` in main), ``startup``, ``reload`` or ``shutdown``
(``sys.exit(3)`` in that hook) or ``request`` (main asks for 259, whose low
byte is 3). Status 3 is also "already running": a start must not take the
program's own status for a lost race for the pidfile.
"""

from __future__ import annotations

import os
import sys

import aiodaemon

WHERE = os.environ["EXIT_WHERE"]


@aiodaemon.on_startup
async def startup() -> None:
    if WHERE == "startup":
        sys.exit(3)


@aiodaemon.on_reload
async def reload() -> None:
    if WHERE == "reload":
        sys.exit(3)


@aiodaemon.on_shutdown
async def shutdown() -> None:
    if WHERE == "shutdown":
        sys.exit(3)


async def main(ctx: aiodaemon.Context) -> None:
    if WHERE == "main":
        sys.exit(3)
    if WHERE == "request":
        ctx.request_shutdown(259)
    await ctx.wait_stopping()
