"""A hook and a main taking the Context; main requests exit status 5."""

from __future__ import annotations

import os

import aiodaemon
from tests.programs.recorder import record, run


@aiodaemon.on_startup
async def with_ctx(ctx: aiodaemon.Context) -> None:
    record(f"hook {type(ctx).__name__} {ctx.pid == os.getpid()}")


async def main(ctx: aiodaemon.Context) -> None:
    record(f"main {ctx.state.value}")
    ctx.request_shutdown(5)


run(main)
