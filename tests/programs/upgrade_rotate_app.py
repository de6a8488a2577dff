"""A daemon for log rotation during upgrades: numbered ticks, a held startup, a held drain.

Every process logs ``tick`` records numbered from 0 (``seq``) every 10 ms,
from its first startup hook until its shutdown cancels what is left, so a
test can count that none is lost or written twice across rotated files.
While the file ``APP_HOLD`` exists, a starting process (an upgrade's
successor: the test creates the file once the first one is ready) logs
``held`` once and stays in its startup hooks. A client connected to
``listen["echo"]`` is served until it closes, so a test holds an old
daemon's drain (waiting for that connection) as long as it likes. While the
file ``APP_IMPORT_HOLD`` exists, a process waits before it calls ``run()``
(a program still importing), saying so with the file ``APP_IMPORT_HOLD.seen``.
Options from the ``APP_*`` environment variables; ``APP_LOG`` empty: no log file;
``APP_STDERR`` (optional): the ``stderr`` file (the log, without a log file).
"""

from __future__ import annotations

import asyncio
import os
import time

import structlog

import aiodaemon

_log = structlog.get_logger("app")
_tasks: set[asyncio.Task[None]] = set()


async def _tick() -> None:
    seq = 0
    while True:
        _log.info("tick", seq=seq)
        seq += 1
        await asyncio.sleep(0.01)


@aiodaemon.on_startup
async def start_ticking() -> None:
    """Tick from the start of the startup hooks."""
    task = asyncio.get_running_loop().create_task(_tick())
    _tasks.add(task)


@aiodaemon.on_startup
async def hold_while_told() -> None:
    """Stay in the startup hooks while the hold file exists."""
    hold = os.environ["APP_HOLD"]
    if os.path.exists(hold):
        _log.info("held")
        # The test removes the file: nothing in this process could set an Event.
        while os.path.exists(hold):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep the connection until the client closes it."""
    _log.info("client connected")
    try:
        await reader.read()
    finally:
        writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve on ``listen["echo"]`` until the daemon stops."""
    await ctx.start_server(serve, "echo")
    await ctx.wait_stopping()


if __name__ == "__main__":
    import_hold = os.environ.get("APP_IMPORT_HOLD", "")
    if import_hold and os.path.exists(import_hold):
        open(import_hold + ".seen", "w").close()
        # A poll, not an event: no loop runs before run(). Bounded, so that a
        # test that died holding the gate leaves no process spinning for ever.
        deadline = time.monotonic() + 60.0
        while os.path.exists(import_hold) and time.monotonic() < deadline:
            time.sleep(0.01)
    options: dict[str, object] = {
        "pidfile": os.environ["APP_PIDFILE"],
        "listen": {"echo": "127.0.0.1:0"},
        "shutdown_timeout": 30.0,
    }
    if os.environ["APP_LOG"]:
        options["log_file"] = os.environ["APP_LOG"]
    if os.environ.get("APP_STDERR"):
        options["stderr"] = os.environ["APP_STDERR"]
    aiodaemon.run(main, **options)  # type: ignore[arg-type]
