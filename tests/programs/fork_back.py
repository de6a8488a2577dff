"""Forks without exec, and the child comes back into the daemon's code.

argv: options (JSON), record, case ``WHERE:WHAT``. WHERE is main, startup (a
startup hook) or task (a task main starts and awaits), or a function main runs
in another thread: to_thread (``asyncio.to_thread``), pool (a one-thread
``ThreadPoolExecutor`` with a second work item queued behind it, which records
``queued PID`` where it runs) or thread (a ``threading.Thread``). WHAT is what
the child does then: ``return``, ``raise`` (ValueError), ``exit``
(``sys.exit(7)``) or ``await`` (awaits a future of the daemon's loop it got
before the fork). The parent records ``child PID STATUS`` once the child ended,
and main then waits for the stop. Every hook records that it ran, with its pid.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

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


def fork_in_thread(go: threading.Event | None = None) -> None:
    """Fork (once ``go`` is set); in the child do WHAT; in the parent wait for the child."""
    if go is not None:
        go.wait(30)
    pid = os.fork()
    if pid == 0:
        if WHAT == "raise":
            raise ValueError("the child's error")
        if WHAT == "exit":
            sys.exit(7)
        return
    _, status = os.waitpid(pid, 0)
    record(f"child {pid} {os.waitstatus_to_exitcode(status)}")


async def fork_in_other_thread() -> None:
    """Run :func:`fork_in_thread` in the thread WHERE names."""
    loop = asyncio.get_running_loop()
    if WHERE == "to_thread":
        await asyncio.to_thread(fork_in_thread)
    elif WHERE == "pool":
        go = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            forking = loop.run_in_executor(pool, fork_in_thread, go)
            # Queued before the fork, behind the forking call: the parent's work.
            queued = loop.run_in_executor(pool, lambda: record(f"queued {os.getpid()}"))
            go.set()
            await asyncio.gather(forking, queued)
    else:
        thread = threading.Thread(target=fork_in_thread)
        thread.start()
        await asyncio.to_thread(thread.join)


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
    if WHERE in ("to_thread", "pool", "thread"):
        await fork_in_other_thread()
    await ctx.wait_stopping()


run(main)
