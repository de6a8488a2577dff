"""Hooks in the forms a program may hand over: a partial, a bound method, one function twice."""

from __future__ import annotations

import functools

import aiodaemon
from tests.programs.recorder import record, run


async def tagged(tag: str, ctx: object = None) -> None:
    record(f"partial {tag} {type(ctx).__name__}")


class Service:
    async def start(self, ctx: aiodaemon.Context) -> None:
        record(f"bound method {type(ctx).__name__}")


async def twice() -> None:
    record("twice")


aiodaemon.on_startup(functools.partial(tagged, "a"))
aiodaemon.on_startup(Service().start)
aiodaemon.on_startup(twice)
aiodaemon.on_startup(twice)


async def main() -> None:
    record("main")


run(main)
