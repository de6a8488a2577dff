"""Reload: one run of the reload hooks, in registration order.

Runs never overlap; requests that arrive during one coalesce into one more
(the state machine, :mod:`._state`); which run answers which request is
:mod:`._reloads`' business. The first failing hook stops the run: later hooks
would build on a step that did not happen, and the program keeps its previous
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from typing import TYPE_CHECKING

import structlog

from .._prefork._detach import close_in_forked_children, stop_closing_in_forked_children
from ._hooks import call_async, describe, in_own_context, warn_returned
from ._outcome import error_text, raised
from ._state import Event, State
from ._user_exit import EXIT_REQUESTS, requested_status

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._runtime import Runtime

__all__ = ["RELOAD_CANCELLED", "log_reload_abandoned", "run_reload"]

_log = structlog.get_logger("aiodaemon")

#: The error of a reload run the shutdown cancelled (its hooks did begin).
RELOAD_CANCELLED = "cancelled: the daemon is stopping"
#: Seconds the hooks wait, at most, for the log writer to reopen the files: one
#: stalled on a sink (a stderr pipe nobody reads) must not hold reloads back.
REOPEN_WAIT = 1.0


def log_reload_abandoned() -> None:
    """Say that a reload asked for (a SIGHUP, ``reload``) will not run: the daemon is stopping.

    Without it, a SIGHUP just before a SIGTERM left only its ``signal
    received`` in the log, and nothing said whether the hooks had run.
    """
    _log.info("reload abandoned", reason="the daemon is stopping")


async def run_reload(rt: Runtime) -> None:
    """One run of the reload hooks, in order; its result answers the requests it covers."""
    if rt.parts.pidfile is None:
        # Only `upgrade --pidfile` looks at the mark: none without a pidfile.
        await _run_reload(rt)
        return
    with _reloading_mark():
        await _run_reload(rt)


@contextlib.contextmanager
def _reloading_mark() -> Iterator[None]:
    """Listen on the reloading mark while the run lasts (see ``_prefork._pidfile.reloading_mark``).

    ``upgrade`` without a control socket looks there: the daemon refuses an
    upgrade while it reloads, and the command waited its whole --timeout and
    15 s more for a new process, then blamed a start. Best effort: a mark
    that cannot be bound leaves the command to wait as it did.
    """
    # Loaded by now (a daemon with a pidfile has the module that names the
    # mark): no import from disk in a run.
    from .._prefork._pidfile import open_mark, reloading_mark

    mark = open_mark(reloading_mark(os.getpid()))
    if mark is not None:
        # A worker a reload hook forks (a pool restarted on reload) kept the
        # mark open after the run, and every upgrade was refused "while reloading".
        close_in_forked_children(mark.fileno())
    try:
        yield
    finally:
        if mark is not None:
            stop_closing_in_forked_children([mark.fileno()])
            mark.close()


async def _run_reload(rt: Runtime) -> None:
    # systemd hears of reloads only once it heard READY=1: a RELOADING=1
    # (and the READY=1 closing it) before would claim a readiness the
    # program has not reported yet (ready="manual").
    notifier = rt.parts.notifier if rt.ready else None
    if notifier is not None:
        notifier.reloading()
    await _reopen_logs(rt)
    if rt.lifecycle.state is not State.RELOADING:
        # A stop came while the files reopened: it told the requests this run
        # covers that no hook ran, and none begins once the daemon is stopping.
        log_reload_abandoned()
        return
    covers = rt.reloads.begin()
    _log.info("reload started")
    error = failed = None
    exit_request: tuple[BaseException, str] | None = None
    exiting: int | None = None
    me = asyncio.current_task()
    for hook in rt.hooks.reload:
        rt.hook_running = ("reload", describe(hook), time.monotonic())
        try:
            # Each hook in its own contextvars Context (see in_own_context).
            result = await in_own_context(
                functools.partial(call_async, hook, rt.context), describe(hook)
            )
            warn_returned("reload", describe(hook), result)
        except EXIT_REQUESTS as exc:
            # The program asks to end: this reload failed, the daemon stops.
            exit_request = exc, f"reload hook {describe(hook)}"
            # Whoever waits for this reload hears the daemon is going, and with what.
            exiting = requested_status(exc)[0]
            error, failed = error_text(exc), describe(hook)
            break
        except asyncio.CancelledError:
            # The shutdown cancels a reload still running (its step 6, first):
            # the hook did run, and whoever waits for the reload hears so.
            _cancelled(rt, covers, hook)
            raise
        except Exception as exc:
            # The program keeps its previous state: later hooks would
            # build on a step that did not happen.
            _log.error("reload hook failed", hook=describe(hook), exc_info=raised(exc))
            error, failed = error_text(exc), describe(hook)
            break
        finally:
            rt.hook_running = None
        if me is not None and me.cancelling():
            # The hook swallowed the shutdown's cancellation: the stop still
            # cancels the run. A later hook would act on what the shutdown
            # hooks already closed, and the run did not succeed.
            _cancelled(rt, covers, hook)
            raise asyncio.CancelledError
    rt.reloads.finish(covers, error, exiting, failed)
    if error is None:
        _log.info("reload finished", ok=True)
    else:
        _log.error("reload finished", ok=False, error=error)
    if exit_request is not None:
        # Stopping first: a reload pending behind this one must not begin.
        rt.exit_requested(*exit_request)
    if notifier is not None and rt.lifecycle.state is State.RELOADING:
        notifier.ready(None if error is None else f"running; last reload failed: {error}")
    rt.dispatch(Event.RELOADED)


def _cancelled(rt: Runtime, covers: int, hook: object) -> None:
    """Log a run the shutdown cancelled in ``hook`` and answer its requests with that."""
    _log.warning("reload cancelled", hook=describe(hook), error=RELOAD_CANCELLED)
    rt.reloads.finish(covers, RELOAD_CANCELLED)


async def _reopen_logs(rt: Runtime) -> None:
    """Reopen the log files and wait (up to :data:`REOPEN_WAIT`) until the writer has.

    The writer thread moves fds 1 and 2 to the ``stdout``/``stderr`` files a
    rotation created, behind the records already queued (a busy daemon has
    thousands). A hook run before that would print into the rotated file, and
    a helper it starts would inherit that file for good.
    """
    loop = asyncio.get_running_loop()
    reopened = asyncio.Event()
    rt.parts.logs.reopen(done=functools.partial(loop.call_soon_threadsafe, reopened.set))
    # Past it the hooks run all the same; the files follow once the writer gets there.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reopened.wait(), REOPEN_WAIT)
