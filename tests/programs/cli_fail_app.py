"""A startup hook that raises: the launcher must exit non-zero with the error."""

from __future__ import annotations

import aiodaemon


@aiodaemon.on_startup
async def broken() -> None:
    raise RuntimeError("the database is on fire")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
