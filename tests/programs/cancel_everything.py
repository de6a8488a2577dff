"""A program that cancels "every other task", the old cleanup idiom, somewhere in its life.

argv: options (JSON), record, WHERE (``startup``, ``main``, ``reload`` or
``shutdown``: the hook, or the end of ``main``, doing it), FORM (``loop``: a
``cancel()`` of each; ``gather``: then ``await asyncio.gather(*tasks,
return_exceptions=True)``). ``main`` starts a poller of its own, which records
``poller cancelled`` when it is; the shutdown hook ``close_db`` records
``close_db``; the one doing it records ``cancelled everything``.
"""

from __future__ import annotations

import asyncio
import sys

import aiodaemon
from tests.programs.recorder import record, run

WHERE, FORM = sys.argv[3], sys.argv[4]


async def cancel_everything() -> None:
    """Cancel every task but the current one (and, as FORM says, wait for them)."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if FORM == "gather":
        await asyncio.gather(*tasks, return_exceptions=True)
    record("cancelled everything")


async def poller() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        record("poller cancelled")
        raise


@aiodaemon.on_startup
async def restart_workers() -> None:
    if WHERE == "startup":
        await cancel_everything()
        await asyncio.sleep(0.05)  # a cancellation that reached this hook lands here


@aiodaemon.on_reload
async def reload_workers() -> None:
    if WHERE == "reload":
        await cancel_everything()


@aiodaemon.on_shutdown
async def close_db() -> None:
    record("close_db")


@aiodaemon.on_shutdown
async def cancel_background() -> None:
    if WHERE == "shutdown":
        await cancel_everything()


async def main() -> None:
    task = asyncio.create_task(poller(), name="poller")
    record("main running")
    if WHERE == "main":
        await asyncio.sleep(0)  # the poller is waiting now
        await cancel_everything()
        return
    await task


run(main)
