"""A main that raises."""

from __future__ import annotations

from tests.programs.recorder import run


async def main() -> None:
    raise LookupError("no such widget")


run(main)
