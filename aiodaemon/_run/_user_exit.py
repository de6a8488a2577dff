"""``sys.exit()`` and ``KeyboardInterrupt`` raised by the program: requests to end, not crashes.

Raised in ``main``, a hook or a task of the program, they end the daemon the
way it ends on a signal or when ``main`` returns: through the shutdown sequence
(shutdown hooks, the ``exit`` record), with the status they ask for.
"""

from __future__ import annotations

import signal
from asyncio import CancelledError, Task
from typing import TYPE_CHECKING, Any

import structlog

from ._outcome import exit_status

if TYPE_CHECKING:
    import asyncio

    from ._outcome import Outcome

__all__ = [
    "EXIT_REQUESTS",
    "from_another_process",
    "note_exit_request",
    "note_shutdown_request",
    "on_loop_exception",
    "requested_status",
    "show_request",
]

_log = structlog.get_logger("aiodaemon")

#: What a program raises to end (never caught by ``except Exception``).
EXIT_REQUESTS = (SystemExit, KeyboardInterrupt)


#: The ``__cause__`` a process pool gives an exception its worker raised, by module and name.
_REMOTE_TRACEBACKS = (
    ("concurrent.futures.process", "_RemoteTraceback"),
    ("multiprocessing.pool", "RemoteTraceback"),
)


def from_another_process(exc: BaseException) -> bool:
    """Whether ``exc`` was raised in another process and re-raised here: a pool call's failure.

    A ``ProcessPoolExecutor`` hands back whatever its worker raised, a Ctrl-C's
    ``KeyboardInterrupt`` (the worker is in the terminal's process group) or a
    ``sys.exit()`` in the called function too. Awaited, it is that call's
    failure, not this program asking to end: taken as one, Ctrl-C ended the
    daemon with 130 and "exit requested by a task", skipping the graceful
    stop it had begun. Compared by name: nothing is imported for the check.
    """
    cause = type(exc.__cause__)
    return (cause.__module__, cause.__name__) in _REMOTE_TRACEBACKS


def requested_status(exc: BaseException) -> tuple[int, str | None]:
    """The exit status ``exc`` asks for and its message, as the interpreter reads them.

    ``sys.exit()``/``sys.exit(None)`` → 0; ``sys.exit(n)`` → n (outside
    0-255, see :func:`._outcome.exit_status`);
    ``sys.exit("text")`` → 1 with the message "text"; ``KeyboardInterrupt`` →
    130, like the SIGINT it stands for.
    """
    if not isinstance(exc, SystemExit):
        return 128 + signal.SIGINT, None
    code = exc.code
    if code is None:
        return 0, None
    if isinstance(code, int):
        return exit_status(code), None
    try:
        return 1, str(code)
    except Exception:
        return 1, "<exit message str() failed>"


def show_request(exc: BaseException) -> str:
    """``sys.exit(3)``, ``sys.exit('missing config')`` or ``KeyboardInterrupt``, for the log."""
    if isinstance(exc, SystemExit):
        return f"sys.exit({exc.code!r})" if exc.code is not None else "sys.exit()"
    return type(exc).__name__


def on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The run phase's loop exception handler: log what no task handled."""
    exc = context.get("exception")
    if (
        isinstance(exc, EXIT_REQUESTS)
        and context.get("future") is not None
        and not from_another_process(exc)
    ):
        # A task's sys.exit()/KeyboardInterrupt left the loop when raised and
        # was taken as an exit request then (run_daemon): nothing unhandled.
        return
    if isinstance(exc, CancelledError) and _closed_cancelled_stream(context.get("handle")):
        return
    detail = context.get("message")
    exc_info = exc if isinstance(exc, BaseException) else None
    # asyncio's own handler shows the task ("future" for an exception never
    # retrieved, "task" for one destroyed pending): its name says whose it was.
    task = context.get("future", context.get("task"))
    if isinstance(task, Task):
        _log.error(
            "unhandled exception in event loop",
            detail=detail,
            task=task.get_name(),
            exc_info=exc_info,
        )
    else:
        _log.error("unhandled exception in event loop", detail=detail, exc_info=exc_info)


#: The done callback asyncio.start_server() gives each handler's task (asyncio.streams).
_STREAM_HANDLER_DONE = "StreamReaderProtocol.connection_made.<locals>.callback"


def _closed_cancelled_stream(handle: object) -> bool:
    """Whether ``handle`` ran asyncio's done callback of a cancelled stream handler (then closed).

    Before python/cpython#113538 (Python 3.11.7 and 3.12.1 still lack it) that
    callback asked a cancelled handler's task for its exception: the
    CancelledError was logged at every stop that cancelled a client's handler,
    and the transport stayed open, so on 3.12 a server's ``wait_closed()``
    (``async with server``) waited for it until the forced exit. As Python does
    since: the transport is closed, nothing logged. uvloop's handle shows its
    callback only in its repr, and its server does not wait for the transport.
    """
    callback = getattr(handle, "_callback", None)
    if callback is None:
        return _STREAM_HANDLER_DONE in repr(handle)
    if getattr(callback, "__qualname__", None) != _STREAM_HANDLER_DONE:
        return False
    code = getattr(callback, "__code__", None)
    cells = dict(zip(getattr(code, "co_freevars", ()), callback.__closure__ or (), strict=True))
    if "transport" in cells:
        cells["transport"].cell_contents.close()
    return True


def note_exit_request(outcome: Outcome, ready: bool, exc: BaseException, by: str) -> None:
    """``by`` raised SystemExit or KeyboardInterrupt: log it and record the status it asks for.

    After ready, ``sys.exit(n)`` and ``KeyboardInterrupt`` (130) set the
    exit status; ``sys.exit("text")`` is a failure with that message
    (status 1). Before ready, the start ends with that status and that
    message or one naming the request, for the launcher: ``sys.exit(0)``
    in a startup hook ends it with 0 (nothing to run), though a launcher
    exits 1 (no daemon runs).
    """
    code, text = requested_status(exc)
    if text is not None:
        _log.error("exit requested", by=by, status=code, error=text)
        outcome.fail(text, None, code)
        return
    _log.info("exit requested", by=by, status=code, raised=show_request(exc))
    if not ready:
        _end_before_ready(outcome, code, f"{show_request(exc)} in {by}")
    else:
        outcome.exit_with(code)


def note_shutdown_request(outcome: Outcome, ready: bool, code: int, by: str | None) -> None:
    """``ctx.request_shutdown(code)`` (``by``: the startup hook that called it, if known).

    Logged; before ready it ends the start like ``sys.exit(code)``: 0 stays the
    daemon's 0 (the program decided there is nothing to run), and the launcher is
    told why.
    """
    if by is None:
        _log.info("shutdown requested by the program", status=code)
    else:
        _log.info("shutdown requested by the program", status=code, by=by)
    if not ready:
        asked = f"ctx.request_shutdown({code})" if code else "ctx.request_shutdown()"
        _end_before_ready(outcome, code, f"{asked} in {by}" if by else asked)


def _end_before_ready(outcome: Outcome, code: int, reason: str) -> None:
    if not code:
        # The launcher exits 0: say that nothing is running.
        reason = f"the daemon ended before it was ready ({reason})"
    outcome.end_before_ready(code, reason)
