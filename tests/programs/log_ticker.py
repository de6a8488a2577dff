"""A daemon-like child: a numbered line every 2 ms, reopen on USR1/HUP, close on TERM."""

from __future__ import annotations

import asyncio
import json
import signal

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()


async def main() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, writer.reopen)
    loop.add_signal_handler(signal.SIGHUP, writer.reopen)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    n = 0
    while not stop.is_set():
        log.info("tick", n=n)
        n += 1
        await asyncio.sleep(0.002)
    log.info("done", last=n - 1)


asyncio.run(main())
print(json.dumps({"closed": writer.close(10), "dropped": writer.dropped}), flush=True)
