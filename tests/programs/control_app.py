"""A daemon steered by files in $CONTROL_APP_DIR, for the control socket's tests.

``startup`` holds "hang" (an await that never ends), "block" (a sync sleep that
blocks the loop) or "wait" (until a file ``release`` appears). ``reload`` holds
"fail:MESSAGE", "slow:SECONDS" or "block:SECONDS". Each reload run appends its
mode to ``reloads``. ``shutdown`` holds "slow:SECONDS". A ``listen=`` socket
named "echo" is served as an echo.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiodaemon

HERE = Path(os.environ.get("CONTROL_APP_DIR", "."))


def _mode(name: str) -> str:
    try:
        return (HERE / name).read_text().strip()
    except OSError:
        return ""


@aiodaemon.on_startup
async def warm_up() -> None:
    mode = _mode("startup")
    if mode == "hang":
        await asyncio.Event().wait()
    elif mode == "block":
        time.sleep(3600)
    elif mode == "wait":
        while not (HERE / "release").exists():  # noqa: ASYNC110  (another process makes it)
            await asyncio.sleep(0.02)


@aiodaemon.on_reload
async def reload_config() -> None:
    mode = _mode("reload")
    try:
        with open(HERE / "reloads", "a") as f:
            f.write(f"{mode or 'ok'}\n")
    except OSError:
        pass  # a daemon dropped to nobody may not write here; the result still counts
    kind, _, arg = mode.partition(":")
    if kind == "fail":
        raise ValueError(arg)
    if kind == "slow":
        await asyncio.sleep(float(arg))
    elif kind == "block":
        time.sleep(float(arg))


@aiodaemon.on_shutdown
async def close_up() -> None:
    kind, _, arg = _mode("shutdown").partition(":")
    if kind == "slow":
        await asyncio.sleep(float(arg))


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    if "echo" in ctx.sockets:
        server = await asyncio.start_server(echo, sock=ctx.sockets["echo"])
        async with server:
            await ctx.wait_stopping()
    else:
        await ctx.wait_stopping()
