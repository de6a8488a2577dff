"""``main`` sets a task factory of the ``(loop, coro)`` form older asyncio documented.

The factory records ``factory made a task`` each time it is used. A lifespan
binds a ContextVar in its setup and records what its teardown reads; the
shutdown hook records ``close_db``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiodaemon
from tests.programs.recorder import record, run

connection: contextvars.ContextVar[str] = contextvars.ContextVar("connection", default="none")


def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    record("factory made a task")
    return asyncio.Task(coro, loop=loop)


@aiodaemon.lifespan
async def database() -> AsyncIterator[None]:
    connection.set("db-1")
    yield
    record(f"teardown saw {connection.get()}")


@aiodaemon.on_shutdown
async def close_db() -> None:
    record("close_db")


async def main() -> None:
    # typeshed knows only the 3.11 form (context=): the old one is the point here.
    asyncio.get_running_loop().set_task_factory(factory)  # type: ignore[arg-type]
    record("factory set")
    await asyncio.Event().wait()


run(main)
