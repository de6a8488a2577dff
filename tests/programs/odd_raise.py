"""Raises what ``except Exception`` misses, or an exception that cannot be printed.

argv: options (JSON), record, case ``WHERE:WHAT``. WHERE is main, startup,
reload (main asks for one reload, then waits for the stop), signal (an
``on_signal(SIGWINCH)`` handler; main sends itself SIGWINCH, then waits for
the stop), readiness (a readiness check; main waits for the stop) or shutdown
(main returns at once); WHAT is
``cancelled`` (CancelledError, nothing cancelled the hook), ``self-cancel``
(the hook's task cancels itself), ``generatorexit``, ``base`` (a BaseException
subclass), ``badstr`` (an Exception whose ``__str__`` raises) or ``huge`` (a
ValueError with a message of 100,000 characters) or ``closed-stderr`` (closes
``sys.stderr``, then raises ValueError). Every hook
records that it ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import NoReturn

import aiodaemon
from tests.programs.recorder import record, run

WHERE, WHAT = sys.argv[3].split(":", 1)


class ProgramBase(BaseException):
    """A BaseException of the program's own."""


class Unprintable(Exception):
    """An exception whose message cannot be made."""

    def __str__(self) -> str:
        raise ValueError("no text")


async def fail() -> NoReturn:
    if WHAT == "cancelled":
        raise asyncio.CancelledError
    if WHAT == "self-cancel":
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
    if WHAT == "generatorexit":
        raise GeneratorExit
    if WHAT == "base":
        raise ProgramBase("the program's own")
    if WHAT == "huge":
        raise ValueError("x" * 100_000)
    if WHAT == "closed-stderr":
        sys.stderr.close()
        raise ValueError("after closing stderr")
    raise Unprintable


@aiodaemon.on_startup
async def startup() -> None:
    record("startup hook")
    if WHERE == "startup":
        await fail()


@aiodaemon.on_reload
async def reload() -> None:
    record("reload hook")
    if WHERE == "reload":
        await fail()


@aiodaemon.on_signal(signal.SIGWINCH)
async def winch() -> None:
    record("signal handler")
    if WHERE == "signal":
        await fail()


@aiodaemon.readiness_check
async def check() -> bool:
    if WHERE == "readiness":
        await fail()
    return True


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record("shutdown hook")
    if WHERE == "shutdown":
        await fail()


async def main(ctx: aiodaemon.Context) -> None:
    record("main")
    if WHERE == "main":
        await fail()
    if WHERE == "reload":
        ctx.request_reload()
        await ctx.wait_stopping()
    if WHERE == "signal":
        os.kill(os.getpid(), signal.SIGWINCH)
        await ctx.wait_stopping()
    if WHERE == "readiness":
        await ctx.wait_stopping()


run(main)
