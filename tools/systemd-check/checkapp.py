"""The program tools/systemd-check/check.sh runs under a real systemd.

An echo server (listen= name ``echo``) whose reload hook obeys a file, so that
the check can make a reload fail or block the event loop from outside:

- ``/run/checkapp-mode`` absent or empty: reloads succeed;
- ``fail``: the reload hook raises ``ValueError: bad config``;
- ``block``: the reload hook blocks the event loop (``time.sleep``), which
  starves the watchdog pings;
- ``startfail``: the startup hook raises ``KeyError: 'DATABASE_URL'``.

A startup hook sets its own ``STATUS=``, as a program would.
"""

from __future__ import annotations

import asyncio
import pathlib
import time

import aiodaemon

MODE = pathlib.Path("/run/checkapp-mode")


def _read_mode() -> str:
    try:
        return MODE.read_text().strip()
    except FileNotFoundError:
        return ""


@aiodaemon.on_startup
async def warm_up(ctx: aiodaemon.Context) -> None:
    """Say what the startup is doing, in systemctl status; fail if asked to."""
    ctx.set_status("warming up")
    if await asyncio.to_thread(_read_mode) == "startfail":
        raise KeyError("DATABASE_URL")


@aiodaemon.on_reload
async def reload_config() -> None:
    """Succeed, fail or block the loop, as /run/checkapp-mode says."""
    mode = await asyncio.to_thread(_read_mode)
    if mode == "fail":
        raise ValueError("bad config")
    if mode == "block":
        time.sleep(3600)  # noqa: ASYNC251 - blocking the loop is the point


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until the client closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    """Serve ``echo`` until shutdown."""
    await ctx.start_server(handle, "echo")
    await ctx.wait_stopping()
