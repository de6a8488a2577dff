"""A child the program forks from the daemon (no exec) that comes back into the daemon's code.

After ``os.fork()`` in ``main`` or a hook, the child runs on in the same
coroutine: if it returns or raises from there, it would go on in the daemon's
code on a copy of the daemon's event loop (whose epoll instance it shares with
the daemon, and which asyncio refuses to run in another process), and it
hung there for ever, its parent waiting in ``waitpid``. It ends instead, the
moment it comes back: returned, status 0; ``sys.exit(n)``, n;
``KeyboardInterrupt``, 130; an exception, its traceback and status 1. It runs
no hook of the daemon's, writes no ``exit`` record and removes no file of
the daemon's (it leaves by ``os._exit``, after its log records are written),
and says so in one line on stderr and a record in the log.

A child forked in a task of the program's own, or in a callback, comes back
to the event loop instead: a callback queued in the child at the fork ends
it there, with the status of the task that forked (0 after a callback; 1
while the task awaits: a forked child cannot use the daemon's loop).

A child forked in another thread comes back when the thread's function ends.
In a thread pool's worker (``asyncio.to_thread``, ``run_in_executor``) the
worker then took the next work item: none ever came, so the child lived on,
holding the ``listen=`` sockets (the next ``start`` could not bind them), or
ran work the daemon had queued before the fork. The parent's work items are
dropped in the child and one of ours put in their place, which ends it with
the status of the function that forked. A ``threading.Thread`` of the
program's whose function ends would end the child, its last thread, but for
the log writer the child starts: it ends there too, the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import queue
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from .._prefork._messages import flush_stdio, say
from ._outcome import error_text
from ._user_exit import requested_status, show_request

if TYPE_CHECKING:
    from types import FrameType

    from .._logs._logwriter import LogWriter

__all__ = ["end_if_forked", "watch_forks"]

_log = structlog.get_logger("aiodaemon")

#: Seconds a leaving child gives its log writer to write its last records.
_DRAIN_TIMEOUT = 1.0


class _Watch:
    """The daemon being watched: its pid, loop, loop thread and log writer."""

    __slots__ = ("forked_by", "forking_task", "logs", "loop", "pid", "thread")

    def __init__(self) -> None:
        self.pid: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: int | None = None
        self.logs: LogWriter | None = None
        #: the task that called ``os.fork()`` on the loop's thread (None: a callback).
        self.forking_task: asyncio.Task[Any] | None = None
        #: the pid of the process that forked last.
        self.forked_by: int | None = None


_watch = _Watch()
_registered = False


def watch_forks(loop: asyncio.AbstractEventLoop, logs: LogWriter) -> None:
    """From now on, a child forked from this process ends when it comes back into our code.

    Called on the loop's thread, once the loop runs; a later run in the
    same process replaces what this one watched.
    """
    global _registered
    _watch.pid = os.getpid()
    _watch.loop = loop
    _watch.thread = threading.get_ident()
    _watch.logs = logs
    if not _registered:
        _registered = True
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def end_if_forked(where: str, exc: BaseException | None) -> None:
    """In a forked child, end it: ``where`` (main or a hook) returned, or raised ``exc``.

    Returns at once in the daemon's own process.
    """
    if _watch.pid is None or os.getpid() == _watch.pid:
        return
    _end_child(where, exc)


def _before_fork() -> None:
    _watch.forking_task = None
    _watch.forked_by = os.getpid()
    if _watch.pid == os.getpid() and threading.get_ident() == _watch.thread:
        # RuntimeError: the loop is not running (before or after the run).
        with contextlib.suppress(RuntimeError):
            _watch.forking_task = asyncio.current_task()


def _after_fork_in_child() -> None:
    loop = _watch.loop
    if _watch.pid is None or _watch.forked_by != _watch.pid or loop is None:
        return  # not forked from the daemon: nothing comes back to it
    if loop.is_closed() or not loop.is_running():
        return
    if threading.get_ident() != _watch.thread:
        _end_back_in_thread()
        return
    loop.call_soon(_back_in_loop, _watch.forking_task)


def _back_in_loop(task: asyncio.Task[Any] | None) -> NoReturn:
    # Queued in the child at the fork: its first turn of the daemon's loop.
    if task is None:
        _end_child("a callback", None)
    where = f"task {task.get_name()!r}"
    if not task.done():
        _end_child(where, None, still_running=True)
    if task.cancelled():
        _end_child(where, asyncio.CancelledError())
    _end_child(where, task.exception())


def _end_back_in_thread() -> None:
    """End the child when the function that forked, in a thread not the loop's, ends."""
    thread = threading.current_thread()
    pool = sys.modules.get("concurrent.futures.thread")
    work_queue = None if pool is None else pool._threads_queues.get(thread)
    if pool is not None and work_queue is not None:
        forking = _forking_work_item(pool._WorkItem.run.__code__)
        name = "a function" if forking is None else f"{_function_name(forking.fn)}()"
        # The parent's work, not the child's: it would run twice.
        with contextlib.suppress(queue.Empty):
            while True:
                work_queue.get_nowait()
        work_queue.put(_EndInPool(f"{name} in thread {thread.name!r}", forking))
        return
    # threading's own names, the same in CPython 3.11 to 3.13: what
    # Thread._bootstrap_inner calls when run() raised, then as it ends.
    if not hasattr(thread, "_invoke_excepthook") or not hasattr(thread, "_delete"):
        return  # not a thread Python started: no Python function of ours comes back
    target = getattr(thread, "_target", None)
    name = f"{type(thread).__qualname__}.run" if target is None else _function_name(target)
    ending = _ThreadEnd(f"{name}() in thread {thread.name!r}")
    thread._invoke_excepthook = ending.raised
    thread._delete = ending.ended


def _forking_work_item(run_code: object) -> Any:
    """The thread pool's work item whose function forked (its ``run()`` frame's ``self``)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is run_code:
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


def _function_name(fn: object) -> str:
    """The name the program gave ``fn``, without ``asyncio.to_thread``'s wrapping."""
    while isinstance(fn, functools.partial):
        # to_thread runs partial(Context.run, fn, ...) in the pool.
        wrapped = isinstance(getattr(fn.func, "__self__", None), contextvars.Context)
        fn = fn.args[0] if wrapped and fn.args else fn.func
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else type(fn).__qualname__


class _EndInPool:
    """A thread pool's next work item in the child: the forking function is over."""

    def __init__(self, where: str, forking: Any) -> None:
        self.where = where
        self.forking = forking

    def run(self) -> NoReturn:
        future = getattr(self.forking, "future", None)
        exc = None
        if future is not None and future.done() and not future.cancelled():
            exc = future.exception(timeout=0)
        _end_child(self.where, exc)


class _ThreadEnd:
    """What ends a child in a ``threading.Thread`` of the program's as its function ends."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.exc: BaseException | None = None

    def raised(self, thread: threading.Thread) -> None:
        # Instead of threading.excepthook's report: _end_child says it, with the status.
        self.exc = sys.exc_info()[1]

    def ended(self) -> NoReturn:
        _end_child(self.where, self.exc)


def _end_child(where: str, exc: BaseException | None, *, still_running: bool = False) -> NoReturn:
    pid = os.getpid()
    failed = exc is not None and not isinstance(exc, (SystemExit, KeyboardInterrupt))
    if still_running:
        status, how = 1, f"{where} awaits on the daemon's event loop"
    elif exc is None:
        status, how = 0, f"{where} returned"
    elif not failed:
        status, how = requested_status(exc)[0], f"{show_request(exc)} in {where}"
    else:
        status, how = 1, f"{where} raised {error_text(exc)}"
    _log.error(
        "forked child came back into the daemon",
        child=pid,
        where=where,
        status=status,
        exc_info=exc if failed else None,
    )
    if failed:
        with contextlib.suppress(ValueError, OSError):  # a closed stderr: the log has it
            traceback.print_exception(exc, file=sys.stderr)
    say(
        f"forked child {pid} came back into the daemon's code ({how}):"
        f" it exits with status {status}; a child forked without exec ends with os._exit()"
    )
    flush_stdio()
    if _watch.logs is not None:
        _watch.logs.close(_DRAIN_TIMEOUT)
    # Not SystemExit: unwinding would run the daemon's own cleanup (the
    # pidfile, the sockets, the shutdown) in the child.
    os._exit(status)
