"""Records the module of the running loop's type, or of the asyncio class it derives from."""

from __future__ import annotations

import asyncio

from tests.programs.recorder import record, run


async def main() -> None:
    kinds = [c.__module__ for c in type(asyncio.get_running_loop()).__mro__]
    record(next(k for k in kinds if k.split(".")[0] in ("asyncio", "uvloop")))


run(main)
