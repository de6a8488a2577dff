"""Forks without exec, and the child comes back into the daemon's code.

argv: options (JSON), record, case ``WHERE:WHAT``. WHERE is main, startup (a
startup hook) or task (a task main starts and awaits); WHAT is what the child
does then: ``return``, ``raise`` (ValueError), ``exit`` (``sys.exit(7)``) or
``await`` (awaits a future of the daemon's loop it got before the fork). The
parent records ``child PID STATUS`` once the child ended, and main then waits
for the stop. Every hook records that it ran, with its pid.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiodaemon
from tests.programs.recorder import record, run

WHERE, WHAT = sys.argv[3].split(":", 1)


async def fork() -> bool:
    """Fork; in the child do WHAT (True: return now); in the parent wait for the child."""
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pid = os.fork()
    if pid == 0:
        if WHAT == "raise":
            raise ValueError("the child's error")
        if WHAT == "exit":
            sys.exit(7)
        if WHAT == "await":
            await never
        return True
    # Blocking the loop is fine here: the parent only waits for its child.
    _, status = os.waitpid(pid, 0)
    record(f"child {pid} {os.waitstatus_to_exitcode(status)}")
    return False


@aiodaemon.on_startup
async def startup() -> None:
    record(f"startup hook {os.getpid()}")
    if WHERE == "startup" and await fork():
        return


@aiodaemon.on_shutdown
async def shutdown() -> None:
    record(f"shutdown hook {os.getpid()}")


async def main(ctx: aiodaemon.Context) -> None:
    record(f"main {os.getpid()}")
    if WHERE == "main" and await fork():
        return
    if WHERE == "task":
        await asyncio.get_running_loop().create_task(fork(), name="forker")
    await ctx.wait_stopping()


run(main)
