"""The forced exit: what a second SIGTERM/SIGINT during shutdown may still do.

Its handler is a plain ``signal.signal`` handler, not a loop callback, so it
runs even while sync code blocks the loop; and since it interrupts the main
thread between any two bytecodes, possibly inside a lock, it only records
and leaves (gunicorn's ``Arbiter.signal`` and trio's ``_signals.py`` are the
models): no logging, no locks, no thread joins. It makes one non-blocking
attempt at the minimum a person or a supervisor relies on — release the
launcher with the status, remove the socket files we own (the steps
:mod:`._builtin` registers) and the pidfile, one line on stderr if stderr
can take it at once — then ``os._exit``. Records still queued for the log
are lost: the person who asked twice asked for that.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from ._pidfile import Pidfile
    from ._readiness import ReadinessPipe

__all__ = ["ForcedExit"]

#: The signals that force the exit once shutdown has begun.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ForcedExit:
    """The minimum done at a forced exit, and the handler that does it."""

    def __init__(self, pipe: ReadinessPipe, pidfile: Pidfile | None) -> None:
        self.pipe = pipe
        self.pidfile = pidfile
        #: extra non-blocking steps registered by services (see RuntimeHandle).
        self.steps: list[Callable[[], None]] = []
        # Taken by the first forced exit: a later signal must not replace its
        # status (it may interrupt the handler itself, between any two bytecodes);
        # only ever acquired without blocking, so safe inside a handler.
        self._claim = threading.Lock()

    def arm(self, remove_loop_handler: Callable[[int], object]) -> None:
        """From now on a SIGTERM or SIGINT exits at once, even if the loop is stuck.

        Args:
            remove_loop_handler: the loop's ``remove_signal_handler``.
        """
        for signum in STOP_SIGNALS:
            with contextlib.suppress(RuntimeError, ValueError):
                remove_loop_handler(signum)
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if not self._claim.acquire(blocking=False):
            # A forced exit is already on its way out (this signal interrupted
            # it, or another thread's): returning lets it finish with its status.
            return
        self._exit(128 + signum, f"second {signal.Signals(signum).name} during shutdown")

    def exit(self, code: int, reason: str) -> NoReturn:
        """Release the launcher, remove the pidfile, say why, and ``os._exit(code)``.

        Safe inside a signal handler: system calls only, each attempted once.
        If another forced exit is already under way, wait for it to end the process.
        """
        if not self._claim.acquire(blocking=False):
            threading.Event().wait()
        self._exit(code, reason)

    def _exit(self, code: int, reason: str) -> NoReturn:
        # Each step on its own: one failing (a vanished directory) must not
        # keep the others, or the exit itself, from happening.
        with contextlib.suppress(BaseException):
            self.pipe.fail(code, f"forced exit ({reason})")
        for step in self.steps:
            with contextlib.suppress(BaseException):
                step()
        if self.pidfile is not None:
            with contextlib.suppress(BaseException):
                self.pidfile.remove()
        with contextlib.suppress(BaseException):
            say_nowait(f"aiodaemon: forced exit ({reason}), status {code}\n")
        os._exit(code)


def say_nowait(text: str) -> None:
    """Write ``text`` to fd 2 only if that cannot block (a stalled pipe is skipped)."""
    poller = select.poll()
    poller.register(2, select.POLLOUT)
    if poller.poll(0):
        # Below PIPE_BUF a pipe write that poll allowed is atomic and immediate.
        os.write(2, text.encode("utf-8", "replace")[: select.PIPE_BUF])
