"""Three startup and three shutdown hooks, each recorded, around a waiting main."""

from __future__ import annotations

import aiodaemon
from tests.programs.recorder import record, run


def register(name: str) -> None:
    async def up() -> None:
        record(f"startup {name}")

    async def down() -> None:
        record(f"shutdown {name}")

    aiodaemon.on_startup(up)
    aiodaemon.on_shutdown(down)


for name in ("a", "b", "c"):
    register(name)


async def main(ctx: aiodaemon.Context) -> None:
    record(f"main {ctx.state.value}")
    await ctx.wait_stopping()
    record("main saw stopping")


run(main)
