"""A main that raises, for PID 1 to pass its status on."""

from __future__ import annotations

import aiodaemon


async def main() -> None:
    raise RuntimeError("crash in a container")


aiodaemon.run(main)
