"""A server whose requests run in a forked ProcessPoolExecutor (``CPU``) or on the loop (``SLOW``).

argv: options (JSON), record. The record says ``cpu started`` once the pool's
worker runs a call (it spins until interrupted), ``slow started`` once a
``SLOW`` request waits on the loop. Run in a process group of its own, a
Ctrl-C (SIGINT to the group) reaches the worker too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time

import aiodaemon
from tests.programs.recorder import record, run

pool: concurrent.futures.ProcessPoolExecutor | None = None


def spin() -> str:
    """CPU work in the worker, until a signal interrupts it."""
    record("cpu started")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        pass
    return "CPU done"


@aiodaemon.on_startup
async def open_pool() -> None:
    global pool
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))


@aiodaemon.on_shutdown
async def close_pool() -> None:
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = (await reader.readline()).decode().strip()
    if line == "CPU":
        answer = await asyncio.get_running_loop().run_in_executor(pool, spin)
    else:
        record("slow started")
        await asyncio.sleep(1)
        answer = "SLOW done"
    writer.write(answer.encode() + b"\n")
    await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.start_server(handle, "tcp")
    await ctx.wait_stopping()


run(main)
