"""What the caller of a detached ``DaemonContext.open()`` hears when the daemon's ``open()`` fails.

The caller waits on the readiness pipe and exits with the verdict the daemon
gives here. A ``SystemExit`` raised in ``open()`` (a pidfile's ``__enter__``
deciding "another instance runs: nothing to do") is the program's own end,
not a failure: the caller ends as the interpreter would have ended the program.
A ``KeyboardInterrupt`` there ends it with 130, as an interrupted program.
"""

from __future__ import annotations

from ._pep3143_open import describe

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from ._readiness import ReadinessPipe

__all__ = ["INTERRUPTED", "exit_request", "tell_caller"]

#: The caller's exit status for a KeyboardInterrupt in the daemon's ``open()``:
#: 128 + SIGINT, as a shell reports an interrupted program.
INTERRUPTED = 130


def tell_caller(pipe: ReadinessPipe, exc: BaseException) -> None:
    """Give the waiting caller the verdict of an ``open()`` that raised ``exc`` in the daemon."""
    if isinstance(exc, SystemExit):
        code, text = exit_request(exc)
        if text is None:
            pipe.end(code)
        else:
            pipe.fail(code, text)
    elif isinstance(exc, KeyboardInterrupt):
        # A SIGINT to the daemon (its default handler raises this), or the program
        # raising it: an end asked for, not a crash, with 130 as aiodaemon.run()
        # gives it. Its text is empty: "KeyboardInterrupt: " read as a message lost.
        pipe.fail(INTERRUPTED, "interrupted (KeyboardInterrupt) before open() returned")
    else:
        pipe.fail(1, describe(exc))


def exit_request(exc: SystemExit) -> tuple[int, str | None]:
    """The exit status a ``SystemExit`` asks for and its message, by the interpreter's rules.

    ``sys.exit()`` and ``sys.exit(0)`` → 0, ``sys.exit(n)`` → n, both with
    nothing to say; anything else (``sys.exit("text")``) → 1 and its text. A
    status outside 0-255 keeps its low byte, but never reads as success.
    """
    code = exc.code
    if code is None:
        return 0, None
    if isinstance(code, int):
        return (code if 0 <= code <= 255 else (code & 0xFF or 1)), None
    try:
        return 1, str(code)
    except Exception:
        return 1, "<exit message str() failed>"
