"""main given as a coroutine object."""

from __future__ import annotations

from tests.programs.recorder import record, run


async def work(n: int) -> None:
    record(f"work {n}")


run(work(7))
