"""A daemon steered by files in $CONTROL_APP_DIR, for the control socket's tests.

``startup`` holds "hang" (an await that never ends), "block" (a sync sleep that
blocks the loop), "wait" (until a file ``release`` appears) or "wait-fail" (the
same, then it raises). ``reload`` holds "fail:MESSAGE", "slow:SECONDS",
"block:SECONDS", "wait" (until a file ``reload-release`` appears), "wait-fail:MESSAGE"
(the same, then it raises) or "block-wait" (the same with the loop blocked). Each
reload run appends its mode to ``reloads``. ``shutdown`` holds "slow:SECONDS"
or "wait" (until a file ``shutdown-release`` appears). ``main`` holds
"notify" (with ``--ready manual``: ``main`` calls ``ctx.notify_ready()`` once a
file ``ready-release`` appears). ``exit`` holds "wait": the process, its pidfile
gone and its lock given back, waits among its last steps (``atexit``) until a
file ``exit-release`` appears (60 s at most).
A ``listen=`` socket named "echo" is served as an echo.
"""

from __future__ import annotations

import asyncio
import atexit
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
    elif mode in ("wait", "wait-fail"):
        await _until(HERE / "release")
        if mode == "wait-fail":
            raise RuntimeError("startup refused by the test")


async def _until(path: Path) -> None:
    while not path.exists():  # noqa: ASYNC110  (another process makes it)
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
    elif kind in ("wait", "wait-fail"):
        await _until(HERE / "reload-release")
        if kind == "wait-fail":
            raise ValueError(arg)
    elif kind == "block-wait":
        # Sync code that forgets to yield, for as long as the test needs (10 min at most).
        deadline = time.monotonic() + 600
        while not (HERE / "reload-release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


@aiodaemon.on_shutdown
async def close_up() -> None:
    kind, _, arg = _mode("shutdown").partition(":")
    if kind == "slow":
        await asyncio.sleep(float(arg))
    elif kind == "wait":
        await _until(HERE / "shutdown-release")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(ctx: aiodaemon.Context) -> None:
    if _mode("main") == "notify":
        await _until(HERE / "ready-release")
        ctx.notify_ready()
    if "echo" in ctx.sockets:
        server = await asyncio.start_server(echo, sock=ctx.sockets["echo"])
        async with server:
            await ctx.wait_stopping()
    else:
        await ctx.wait_stopping()


@atexit.register
def _last_step() -> None:
    if _mode("exit") != "wait":
        return
    deadline = time.monotonic() + 60
    while not (HERE / "exit-release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
