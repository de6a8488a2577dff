"""Lifespans interleaved with hooks; argv[3] picks a broken variant; argv: options, record, kind."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import aiodaemon

RECORD, KIND = sys.argv[2], sys.argv[3]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


@aiodaemon.lifespan
async def outer(ctx: aiodaemon.Context) -> AsyncIterator[None]:
    record(f"outer setup {ctx.state.value}")
    yield
    record(f"outer teardown {ctx.state.value}")


@aiodaemon.on_startup
async def middle() -> None:
    record("middle startup")


@aiodaemon.on_shutdown
async def middle_down() -> None:
    record("middle shutdown")


@aiodaemon.lifespan
async def inner() -> AsyncIterator[None]:
    record("inner setup")
    if KIND == "no-yield":
        return
    if KIND == "setup-raises":
        raise ValueError("inner cannot start")
    yield
    record("inner teardown")
    if KIND == "two-yields":
        yield


async def main(ctx: aiodaemon.Context) -> None:
    record("main")


aiodaemon.run(main, **json.loads(sys.argv[1]))
