"""A script calling aiodaemon.run() without the __main__ guard, whose startup hook uses a
spawn pool: each worker imports this file again as ``__mp_main__``. argv: the log file."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import aiodaemon


@aiodaemon.on_startup
async def use_a_pool() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        await asyncio.wrap_future(pool.submit(os.getpid))


async def main() -> None:
    pass


aiodaemon.run(main, detach=False, log_file=sys.argv[1], start_timeout=20)
