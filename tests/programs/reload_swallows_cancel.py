"""A reload hook that swallows the shutdown's cancellation, then a second reload hook.

argv: options (JSON), record, case. ``next``: the first hook returns after
swallowing it; ``slow``: it sleeps a minute after swallowing it. The hooks,
the shutdown hook and main's cleanup record that they ran.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon
from tests.programs.recorder import record, run

CASE = sys.argv[3]


@aiodaemon.on_reload
async def fetch_config() -> None:
    record("fetch_config")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        record("fetch_config interrupted")
    if CASE == "slow":
        await asyncio.sleep(60)


@aiodaemon.on_reload
async def apply_config() -> None:
    record("apply_config")


@aiodaemon.on_shutdown
async def close_db() -> None:
    record("close_db")


async def main() -> None:
    record("main")
    try:
        await asyncio.Event().wait()
    finally:
        record("main cleanup")


run(main)
