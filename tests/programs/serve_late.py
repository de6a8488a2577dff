"""main calls ``ctx.start_server`` only after the daemon stopped accepting.

argv: options (JSON, with a ``listen=`` socket named ``http``), record. main
sends itself SIGTERM and waits until the shutdown hook runs (by then the
daemon stopped accepting), then calls ``ctx.start_server``; the hook waits
until main made that call. What happens to main is recorded.
"""

from __future__ import annotations

import asyncio
import os
import signal

import aiodaemon
from tests.programs.recorder import record, run

hook_runs = asyncio.Event()
main_called = asyncio.Event()


@aiodaemon.on_shutdown
async def shutdown() -> None:
    hook_runs.set()
    async with asyncio.timeout(10):
        await main_called.wait()
    await asyncio.sleep(0.1)  # main's call gets a few turns of the loop
    record("shutdown hook")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    await hook_runs.wait()
    main_called.set()
    try:
        await ctx.start_server(handle, "http")
    except asyncio.CancelledError:
        record("main cancelled")
        raise
    except BaseException as exc:
        record(f"start_server raised {type(exc).__name__}")
        raise
    record("start_server returned")


run(main)
