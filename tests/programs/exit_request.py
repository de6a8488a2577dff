"""Raises SystemExit or KeyboardInterrupt where the test says.

argv: options (JSON), record, case ``WHERE:WHAT``. WHERE is main, startup,
reload, shutdown, signal (an ``on_signal(SIGWINCH)`` handler; the test
sends the signal), task (a task main creates and keeps), orphan (one it
does not keep), request (main calls ``ctx.request_shutdown(n)``, WHAT a
number), stopping (the same once the daemon is stopping) or return (main
returns the number WHAT); WHAT is ``interrupt``
(KeyboardInterrupt), ``none`` (``sys.exit()``), a number (``sys.exit(n)``, n may be negative),
``hang`` (the hook never returns) or any other text (``sys.exit(text)``).
Every hook records that it ran; main binds a structlog context variable
(``request_id``) and logs once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import NoReturn

import structlog

import aiodaemon
from tests.programs.recorder import record, run

WHERE, WHAT = sys.argv[3].split(":", 1)
_tasks: set[asyncio.Task[None]] = set()


def request_exit() -> NoReturn:
    if WHAT == "interrupt":
        raise KeyboardInterrupt
    if WHAT == "none":
        sys.exit()
    if WHAT.lstrip("-").isdigit():
        sys.exit(int(WHAT))
    sys.exit(WHAT)


@aiodaemon.on_startup
async def startup() -> None:
    record("startup hook")
    if WHERE == "startup":
        request_exit()


@aiodaemon.on_reload
async def reload() -> None:
    record("reload hook")
    if WHERE == "reload" and WHAT == "hang":
        await asyncio.Event().wait()
    if WHERE == "reload":
        request_exit()


@aiodaemon.on_signal(signal.SIGWINCH)
async def on_winch() -> None:
    record("signal handler")
    if WHERE == "signal":
        request_exit()


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")
    if WHERE == "shutdown":
        request_exit()


async def in_task() -> None:
    await asyncio.sleep(0)
    request_exit()


async def main(ctx: aiodaemon.Context) -> int | None:
    structlog.contextvars.bind_contextvars(request_id="r-1")
    structlog.get_logger("app").info("handling")
    record("main")
    if WHERE == "main":
        request_exit()
    if WHERE == "task":
        task = asyncio.get_running_loop().create_task(in_task())
        _tasks.add(task)
    if WHERE == "orphan":
        # No reference kept: the task is collected once it ended.
        asyncio.get_running_loop().create_task(in_task())
    if WHERE == "return":
        return int(WHAT)
    if WHERE == "request":
        ctx.request_shutdown(int(WHAT))
    if WHERE == "shutdown":
        return None
    await ctx.wait_stopping()
    if WHERE == "stopping":
        ctx.request_shutdown(int(WHAT))
    return None


run(main)
