"""An upgrade's new code whose readiness check fails: its database is not reachable yet.

A process started while ``$APP_NOT_READY`` exists (the new version, deployed
with it) fails its ``@readiness_check`` for as long as that file exists; one
started without it (the running version) always passes.
"""

from __future__ import annotations

import asyncio
import os

import aiodaemon

NEW = os.path.exists(os.environ["APP_NOT_READY"])


@aiodaemon.readiness_check
async def database() -> bool:
    """False while the new version's database is unreachable (the file exists)."""
    return not (NEW and os.path.exists(os.environ["APP_NOT_READY"]))


async def main(ctx: aiodaemon.Context) -> None:
    """Serve nothing but the health endpoint until stopped."""
    await asyncio.Event().wait()
