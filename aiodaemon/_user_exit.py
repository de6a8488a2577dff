"""``sys.exit()`` and ``KeyboardInterrupt`` raised by the program: requests to end, not crashes.

Raised in ``main``, a hook or a task of the program, they end the daemon the
way it ends on a signal or when ``main`` returns: through the shutdown sequence
(shutdown hooks, the ``exit`` record), with the status they ask for.
"""

from __future__ import annotations

import signal

__all__ = ["EXIT_REQUESTS", "requested_status", "show_request"]

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
