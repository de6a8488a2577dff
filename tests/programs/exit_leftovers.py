"""A daemon that leaves something running at its end; argv[3] says what.

argv: options (JSON), record, kind. Kinds:

- ``thread``: a shutdown hook starts a non-daemon ``threading.Thread``
  (named ``leftover-sleeper``) that sleeps an hour, and one
  (``short-sleeper``) that ends after 0.3 s; ``main`` ran one short call in
  a ``ThreadPoolExecutor`` of its own, left idle (the interpreter stops such
  workers at once);
- ``pool``: ``main`` runs an hour-long call in a ``ThreadPoolExecutor`` of
  its own (threads ``own-pool_N``), never shut down;
- ``atexit``: an ``atexit`` function sleeps an hour;
- ``atexit-manager``: the same, registered after a startup hook started a
  ``multiprocessing.Manager()`` (fork), whose finalizer it keeps from running;
- ``mp-child``: a startup hook starts a multiprocessing child (fork) that
  ignores SIGTERM, so multiprocessing's own ``atexit`` joins it for ever;
- ``mp-workers``: a startup hook starts two multiprocessing children (fork,
  not daemonic) that wait on a queue for ever: the program never stops them,
  and multiprocessing's own ``atexit`` would join them for ever;
- ``process-pool``: ``main`` ran one short call in a ``ProcessPoolExecutor``
  of its own (the default start method), kept in a global and left idle,
  never shut down (the interpreter's exit stops its workers);
- ``busy-process-pool``: the same pool, running an hour-long call;
- ``busy-main``: ``main`` blocks the loop for good, a busy loop of
  ``time.sleep`` (sync code, never awaiting): the loop never reads a stop signal;
- ``stuck-with-children``: ``main`` starts a daemonic multiprocessing child
  (fork) that sleeps an hour and a ``multiprocessing.Manager()`` (fork), and
  runs one short call in an idle
  ``ProcessPoolExecutor`` of its own, as above; a shutdown hook then waits an
  hour, past the budget (the forced exit), having recorded ``hook stuck``.

The program records ``main running`` (and ``child PID`` for ``mp-child`` and
each of ``mp-workers``,
``worker PID`` for each of the pool's processes, ``manager PID`` for a
manager's server process).
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import multiprocessing.managers
import multiprocessing.synchronize
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import aiodaemon
from tests.programs.recorder import record, run

KIND = sys.argv[3] if len(sys.argv) > 3 else "thread"
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-pool")
_PROCESS_POOLS: list[ProcessPoolExecutor] = []
_MANAGERS: list[multiprocessing.managers.SyncManager] = []


def _start_manager() -> None:
    """Start a manager (its server a forked child), kept so that only the exit ends it."""
    manager = multiprocessing.get_context("fork").Manager()
    _MANAGERS.append(manager)
    record(f"manager {manager._process.pid}")  # type: ignore[attr-defined]


def _queue_worker(queue: multiprocessing.Queue[None]) -> None:
    queue.get()


def _stubborn_child(ignoring: multiprocessing.synchronize.Event) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ignoring.set()
    time.sleep(3600)


@aiodaemon.on_startup
async def begin() -> None:
    if KIND == "atexit-manager":
        _start_manager()
    if KIND in ("atexit", "atexit-manager"):
        atexit.register(time.sleep, 3600)
    elif KIND == "mp-child":
        context = multiprocessing.get_context("fork")
        ignoring = context.Event()
        child = context.Process(target=_stubborn_child, args=(ignoring,), daemon=True)
        child.start()
        # Stubborn before the test may stop us: a SIGTERM that came first would end it.
        if not ignoring.wait(30):
            raise RuntimeError("the child did not start")
        record(f"child {child.pid}")
    elif KIND == "mp-workers":
        context = multiprocessing.get_context("fork")
        queue: multiprocessing.Queue[None] = context.Queue()
        for _ in range(2):
            worker = context.Process(target=_queue_worker, args=(queue,))
            worker.start()
            record(f"child {worker.pid}")


@aiodaemon.on_shutdown
async def leave_a_thread() -> None:
    if KIND == "stuck-with-children":
        record("hook stuck")
        await asyncio.sleep(3600)
    if KIND == "thread":
        threading.Thread(target=time.sleep, args=(3600,), name="leftover-sleeper").start()
        threading.Thread(target=time.sleep, args=(0.3,), name="short-sleeper").start()


async def main(ctx: aiodaemon.Context) -> None:
    loop = asyncio.get_running_loop()
    if KIND == "thread":
        await loop.run_in_executor(_POOL, time.sleep, 0.01)
    elif KIND == "pool":
        loop.run_in_executor(_POOL, time.sleep, 3600)
    elif KIND == "stuck-with-children":
        context = multiprocessing.get_context("fork")
        helper = context.Process(target=time.sleep, args=(3600,), daemon=True)
        helper.start()
        record(f"child {helper.pid}")
        _start_manager()
    if KIND in ("process-pool", "busy-process-pool", "stuck-with-children"):
        _PROCESS_POOLS.append(ProcessPoolExecutor(max_workers=2))
        await loop.run_in_executor(_PROCESS_POOLS[0], os.getpid)
        if KIND == "busy-process-pool":
            loop.run_in_executor(_PROCESS_POOLS[0], time.sleep, 3600)
        for child in multiprocessing.active_children():
            record(f"worker {child.pid}")
    record("main running")
    if KIND == "busy-main":
        while True:
            time.sleep(0.05)
    await ctx.wait_stopping()


if __name__ == "__main__":
    run(main)
