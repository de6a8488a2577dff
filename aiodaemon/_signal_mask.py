"""The lifecycle signals, held back while the daemon has no handler for them.

A signal's default action for SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 is to end
the process. Two windows would let one do that to a running daemon:

- between writing the pid (from then on anyone may signal us: a logrotate
  ``postrotate`` racing a restart, a stop right after a start) and the
  event loop's handlers: the signals are *blocked* there, so they wait,
  pending, and are handled normally once the loop's handlers exist;
- after the loop has closed (its handlers gone, back to the default action)
  until the process exits: the final log drain and the pidfile's removal.
  There SIGHUP, SIGUSR1 and SIGUSR2 are *ignored*: nothing can reload,
  reopen or upgrade any more. SIGTERM and SIGINT keep the forced-exit
  handler armed at the start of the shutdown (:mod:`._forced`).

Threads started while the signals are blocked (the log writer) inherit the
mask and keep it: the signals always reach the main thread, where Python
runs handlers.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable, Iterator

__all__ = [
    "LATE_IGNORED",
    "LIFECYCLE_SIGNALS",
    "ignoring_late_signals",
    "lifecycle_signals_held",
    "release_signals",
]

#: Every signal the run phase handles on its loop (SIGUSR2: the upgrade service).
LIFECYCLE_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
#: Ignored once the loop has closed (SIGTERM/SIGINT have the forced-exit handler).
LATE_IGNORED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def lifecycle_signals_held() -> contextlib.AbstractContextManager[None]:
    """The run phase, from before the pid is written: lifecycle signals wait, none is fatal.

    Blocked in this thread (and the threads it starts) until the runtime
    releases them once the loop's handlers exist (:func:`release_signals`).
    At the end, whatever happened, nothing is left held and SIGHUP, SIGUSR1
    and SIGUSR2 are ignored: after a failure before the loop ran (its handlers
    never installed) a pending SIGHUP must not end the exit.
    """
    return _held_then_late_ignored(LIFECYCLE_SIGNALS)


def ignoring_late_signals() -> contextlib.AbstractContextManager[None]:
    """Around the loop's close: afterwards SIGHUP, SIGUSR1 and SIGUSR2 are ignored.

    Blocked while the loop puts back their default action, then ignored (one
    pending meanwhile is discarded), then unblocked: never a moment in which
    one would end the process.
    """
    return _held_then_late_ignored(LATE_IGNORED)


def release_signals(signals: Iterable[int]) -> None:
    """Unblock ``signals``: the pending ones are delivered, to their handlers, at once."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


@contextlib.contextmanager
def _held_then_late_ignored(held: tuple[int, ...]) -> Iterator[None]:
    """Block ``held``; at the end ignore LATE_IGNORED, then unblock ``held``."""
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        for signum in LATE_IGNORED:
            signal.signal(signum, signal.SIG_IGN)
        release_signals(held)
