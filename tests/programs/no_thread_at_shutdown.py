"""A daemon left no thread to start by the time it stops.

Run with ``user=`` a uid no other process uses, so ``RLIMIT_NPROC`` counts
this program's threads alone: ``main`` uses the default executor, limits the
uid to the threads it has, and logs ``limited``. The shutdown then cannot
start the thread that shuts the executor down (nor its backstop).
"""

from __future__ import annotations

import asyncio
import os
import resource

import structlog

import aiodaemon
from tests.programs.recorder import run


async def main(ctx: aiodaemon.Context) -> None:
    await asyncio.get_running_loop().run_in_executor(None, os.getpid)
    threads = len(os.listdir("/proc/self/task"))
    resource.setrlimit(resource.RLIMIT_NPROC, (threads, threads))
    structlog.get_logger().info("limited", threads=threads)
    await ctx.wait_stopping()


run(main)
