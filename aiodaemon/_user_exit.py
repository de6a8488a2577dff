"""``sys.exit()`` and ``KeyboardInterrupt`` raised by the program: requests to end, not crashes.

Raised in ``main``, a hook or a task of the program, they end the daemon the
way it ends on a signal or when ``main`` returns: through the shutdown sequence
(shutdown hooks, the ``exit`` record), with the status they ask for.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    import asyncio

__all__ = ["EXIT_REQUESTS", "on_loop_exception", "requested_status", "show_request"]

_log = structlog.get_logger("aiodaemon")

#: What a program raises to end (never caught by ``except Exception``).
EXIT_REQUESTS = (SystemExit, KeyboardInterrupt)


def requested_status(exc: BaseException) -> tuple[int, str | None]:
    """The exit status ``exc`` asks for and its message, as the interpreter reads them.

    ``sys.exit()``/``sys.exit(None)`` → 0; ``sys.exit(n)`` → n;
    ``sys.exit("text")`` → 1 with the message "text"; ``KeyboardInterrupt`` →
    130, like the SIGINT it stands for.
    """
    if not isinstance(exc, SystemExit):
        return 128 + signal.SIGINT, None
    code = exc.code
    if code is None:
        return 0, None
    if isinstance(code, int):
        return code, None
    return 1, str(code)


def show_request(exc: BaseException) -> str:
    """``sys.exit(3)``, ``sys.exit('missing config')`` or ``KeyboardInterrupt``, for the log."""
    if isinstance(exc, SystemExit):
        return f"sys.exit({exc.code!r})" if exc.code is not None else "sys.exit()"
    return type(exc).__name__


def on_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The run phase's loop exception handler: log what no task handled."""
    exc = context.get("exception")
    if isinstance(exc, EXIT_REQUESTS) and context.get("future") is not None:
        # A task's sys.exit()/KeyboardInterrupt left the loop when raised and
        # was taken as an exit request then (run_daemon): nothing unhandled.
        return
    _log.error(
        "unhandled exception in event loop",
        detail=context.get("message"),
        exc_info=exc if isinstance(exc, BaseException) else None,
    )
