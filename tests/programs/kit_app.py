"""A daemon for the testing kit's own tests, steered by environment variables.

- ``KIT_FAIL_START``: the startup hook raises ``RuntimeError`` with that text.
- ``KIT_RELOAD_ERROR``: a file; when it is not empty, the reload hook raises
  ``ValueError`` with its text.
- ``KIT_CHILD``: start a long ``sleep`` child and never wait for it (a leftover to clean).
- ``KIT_IGNORE_TERM``: shutdown hooks hang, so only SIGKILL ends it.
- ``KIT_SLOW_STOP``: the shutdown hook takes that many seconds.
- ``KIT_FAIL_MAIN``: ``main`` raises ``RuntimeError`` with that text as soon as it runs.
- ``KIT_BLOCK_START``: the startup hook blocks the event loop (``time.sleep``), so
  the daemon cannot even enforce its own ``start_timeout``.
- ``KIT_RETURN_MAIN``: ``main`` returns as soon as it runs (exit status 0).
- ``KIT_RELOAD_STDERR``: the reload hook writes that text on stderr.
- ``KIT_CRASH_ON``: a line of that text sent to the ``echo`` socket makes ``main``
  raise ``RuntimeError("crashed mid-test")`` (the daemon exits 1 mid-test).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger("kit_app")
_children: list[asyncio.subprocess.Process] = []
#: Set by the echo handler on $KIT_CRASH_ON's line: main raises then.
_crash = asyncio.Event()


@aiodaemon.on_startup
async def start() -> None:
    """Fail, or start a child, as the environment says."""
    if message := os.environ.get("KIT_FAIL_START"):
        raise RuntimeError(message)
    if os.environ.get("KIT_BLOCK_START"):
        time.sleep(3600)
    if os.environ.get("KIT_CHILD"):
        child = await asyncio.create_subprocess_exec("sleep", "300")
        _children.append(child)
        log.info("child started", child=child.pid)


@aiodaemon.on_reload
async def reload() -> None:
    """Raise the text of $KIT_RELOAD_ERROR, if any."""
    path = os.environ.get("KIT_RELOAD_ERROR")
    if path and (text := (await asyncio.to_thread(Path(path).read_text)).strip()):
        raise ValueError(text)
    if message := os.environ.get("KIT_RELOAD_STDERR"):
        print(message, file=sys.stderr, flush=True)
    log.info("reloaded")


@aiodaemon.on_shutdown
async def stop() -> None:
    """Hang when asked to, so that only SIGKILL ends the daemon."""
    if os.environ.get("KIT_IGNORE_TERM"):
        log.info("ignoring the stop")
        await asyncio.Event().wait()
    if delay := os.environ.get("KIT_SLOW_STOP"):
        log.info("stopping slowly", seconds=float(delay))
        await asyncio.sleep(float(delay))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo one line."""
    line = await reader.readline()
    if (text := os.environ.get("KIT_CRASH_ON")) and line.strip() == text.encode():
        _crash.set()
    writer.write(line)
    await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Echo lines on the ``echo`` socket until shutdown."""
    if message := os.environ.get("KIT_FAIL_MAIN"):
        raise RuntimeError(message)
    if os.environ.get("KIT_RETURN_MAIN"):
        return
    server = await asyncio.start_server(handle, sock=ctx.sockets["echo"])
    async with server:
        print("main running", file=sys.stderr, flush=True)
        stopping = asyncio.ensure_future(ctx.wait_stopping())
        crash = asyncio.ensure_future(_crash.wait())
        await asyncio.wait([stopping, crash], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        crash.cancel()
        if _crash.is_set():
            raise RuntimeError("crashed mid-test")
