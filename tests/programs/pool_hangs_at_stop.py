"""A daemon with fork-pool workers and a subprocess, and a shutdown hook that hangs.

The workers are forked after the ``listen=`` sockets are bound, so they hold
them; the subprocess stays in the daemon's process group. Once ready, the
pids of the subprocess and of the workers that answered are in
``$GROUP_PIDS`` (one per line). The shutdown hook sleeps
an hour: only a SIGKILL ends such a daemon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import sys

import aiodaemon

_pool: concurrent.futures.ProcessPoolExecutor | None = None


def _own_pid() -> int:
    return os.getpid()


@aiodaemon.on_startup
async def start_children() -> None:
    global _pool
    _pool = concurrent.futures.ProcessPoolExecutor(
        2, mp_context=multiprocessing.get_context("fork")
    )
    loop = asyncio.get_running_loop()
    # The workers are forked now, whichever of them answers.
    pids = set(await asyncio.gather(*(loop.run_in_executor(_pool, _own_pid) for _ in range(8))))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(3600)"
    )
    pids.add(child.pid)
    with open(os.environ["GROUP_PIDS"], "w") as f:
        f.write("".join(f"{pid}\n" for pid in sorted(pids)))


@aiodaemon.on_shutdown
async def hang() -> None:
    await asyncio.sleep(3600)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.start_server(handle, "tcp")
    await ctx.wait_stopping()
