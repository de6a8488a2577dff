"""A ``Daemon`` whose readiness check always fails; run as ``serving_daemon_app:daemon``."""

from __future__ import annotations

import aiodaemon

daemon = aiodaemon.Daemon()


@daemon.readiness_check
async def never_ready(ctx: aiodaemon.Context) -> bool:
    return ctx.state is not aiodaemon.State.RUNNING


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
