"""Hooks and lifespans around a startup hook that raises; argv: options, record."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import aiodaemon

RECORD = sys.argv[2]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


@aiodaemon.on_startup
async def first() -> None:
    record("startup first")


@aiodaemon.on_shutdown
async def down_first() -> None:
    record("shutdown first")


@aiodaemon.lifespan
async def database() -> AsyncIterator[None]:
    record("database open")
    yield
    record("database closed")


@aiodaemon.on_startup
async def broken() -> None:
    raise RuntimeError("config missing")


@aiodaemon.lifespan
async def cache() -> AsyncIterator[None]:
    record("cache open")
    yield
    record("cache closed")


@aiodaemon.on_shutdown
async def down_last() -> None:
    record("shutdown last")


async def work() -> None:
    record("main ran")


# A coroutine object as main: it never runs, and must not warn that it did not.
aiodaemon.run(work(), **json.loads(sys.argv[1]))
