"""The framework's own tasks: out of the program's reach.

A common cleanup idiom cancels "every other task" (``for t in
asyncio.all_tasks(): t.cancel()``, often followed by ``await
asyncio.gather(*tasks)``). Run in a hook or at the end of ``main``, it reached
the tasks that carry the daemon's life (the lifecycle, the shutdown sequence,
the control server): the daemon died half-way, without its shutdown hooks,
its ``exit`` record or its launcher's verdict; and the gather waited for the
very task that awaited the hook doing it. So, as trio keeps its system tasks
out of the user's nurseries, the framework's tasks are left out of
``asyncio.all_tasks()`` (:func:`own_tasks` lists them), and a ``cancel()``
issued by the program's code is refused; the framework cancels them with
:func:`cancel_task`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = [
    "OwnTask",
    "cancel_task",
    "every_own_task",
    "own_task",
    "own_tasks",
    "with_own_tasks",
]

T = TypeVar("T")

#: Every own task, weakly: ``asyncio.all_tasks()`` no longer holds them.
_OWN: weakref.WeakSet[OwnTask[Any]] = weakref.WeakSet()


class OwnTask(asyncio.Task[T]):
    """A task of the framework's: out of ``asyncio.all_tasks()``, deaf to the program's cancel."""

    def __init__(
        self, coro: Coroutine[Any, Any, T], *, loop: asyncio.AbstractEventLoop, name: str
    ) -> None:
        # Made directly, not by loop.create_task(): a task factory the program
        # set is for its own tasks (and may not take what we pass).
        super().__init__(coro, loop=loop, name=name)
        _OWN.add(self)
        # Private, but present from 3.11 to 3.13 alike; without it the refusal
        # below still keeps the task alive (a gather of it would wait, though).
        unregister = getattr(asyncio.tasks, "_unregister_task", None)
        if unregister is not None:
            unregister(self)

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel, unless the program's code asks (see the module docstring).

        The framework cancels its tasks from its own tasks and from loop
        callbacks (``asyncio.timeout``'s among them), never from a task of the
        program's: one asking is the program's blanket cancel.
        """
        current = asyncio.current_task(self.get_loop())
        if current is not None and not isinstance(current, OwnTask):
            return False
        return super().cancel(msg)

    def cancel_own(self, msg: Any | None = None) -> bool:
        """Cancel whoever's code runs: the framework's own request."""
        return super().cancel(msg)


def own_task(coro: Coroutine[Any, Any, T], name: str) -> OwnTask[T]:
    """Start ``coro`` as an own task on the running loop."""
    return OwnTask(coro, loop=asyncio.get_running_loop(), name=name)


def own_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[Any]]:
    """The own tasks of ``loop`` (default the running one) not done yet."""
    loop = asyncio.get_running_loop() if loop is None else loop
    return {t for t in list(_OWN) if t.get_loop() is loop and not t.done()}


def every_own_task() -> list[asyncio.Task[Any]]:
    """Every own task still referenced, done or not, on any loop."""
    return list(_OWN)


def with_own_tasks() -> set[asyncio.Task[Any]]:
    """Every task of the running loop not done yet: the program's and the framework's."""
    return asyncio.all_tasks() | own_tasks()


def cancel_task(task: asyncio.Task[Any]) -> bool:
    """Cancel ``task`` as the framework: an own task too, whatever task asks."""
    if isinstance(task, OwnTask):
        return task.cancel_own()
    return task.cancel()
