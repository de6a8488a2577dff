"""A program that adds, then removes, its own loop handlers for the daemon's signals.

argv: options (JSON), record, where (``startup``: a startup hook, as a library
watching signals for a migration does; ``block``: the same hook, which then
blocks the event loop until the file ``RECORD.go`` exists; ``thrice``: the
startup hook adds and removes them three times; ``main``). Records
"removed" once done; the reload and shutdown hooks record that they ran.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aiodaemon
from tests.programs.recorder import record, run, wait_for_file

WHERE = sys.argv[3]
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def add_and_remove() -> None:
    loop = asyncio.get_running_loop()
    for signum in SIGNALS:
        loop.add_signal_handler(signum, record, f"program's {signum.name}")
    for signum in SIGNALS:
        loop.remove_signal_handler(signum)
    record("removed")


@aiodaemon.on_startup
async def startup() -> None:
    if WHERE in ("startup", "block"):
        add_and_remove()
    if WHERE == "thrice":
        for _ in range(3):
            add_and_remove()
    if WHERE == "block":
        wait_for_file(sys.argv[2] + ".go")  # blocks the loop: no await


@aiodaemon.on_reload
async def reload() -> None:
    record("reload hook")


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")


async def main() -> None:
    if WHERE == "main":
        add_and_remove()
    await asyncio.Event().wait()


run(main)
