"""The lifecycle signals, held back while the daemon has no handler for them.

A signal's default action for SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 is to end
the process. Two windows would let one do that to a running daemon:

- between writing the pid (from then on anyone may signal us: a logrotate
  ``postrotate`` racing a restart, a stop right after a start) and the
  event loop's handlers: the signals are *blocked* there, so they wait,
  pending, and are handled normally once the loop's handlers exist; so are
  the ``on_signal`` ones, whose default action is mostly to end the process
  too (SIGALRM, SIGPWR, the real-time signals), until their service starts;
- after the loop has closed (its handlers gone, back to the default action)
  until the process exits: the final log drain and the pidfile's removal.
  There SIGHUP, SIGUSR1 and SIGUSR2 are *ignored*: nothing can reload,
  reopen or upgrade any more; so are the ``on_signal`` ones, whose loop
  handlers start no run once the shutdown began. SIGTERM and SIGINT keep the forced-exit
  handler armed at the start of the shutdown (:mod:`._forced`).

Threads started while the signals are blocked (the log writer) inherit the
mask and keep it: the signals always reach the main thread, where Python
runs handlers. A thread the program started before ``run()`` (possible in the
foreground) does not: the kernel hands it a process-directed signal that the
main thread blocks, and the default action would end the process. So when
such threads exist, the held signals also get a handler that only remembers
them, and each remembered one is raised again once released, as a pending
signal would be delivered. Once the loop installs its handlers, CPython's C
handler hands such a signal to the loop itself (its wakeup fd); the loop
drops one it has no handler for yet, so a SIGUSR2 reaching a program thread
before the upgrade service starts is lost (held in the main thread, it waits).

A child the program forks without exec (``multiprocessing``'s default fork
context on Linux, ``os.fork()``) would inherit all of this: the handlers, and
through them the loop's wakeup fd, a socket it shares with the daemon, so a
SIGTERM or SIGHUP sent to the child would stop or reload the daemon, and the
child could not be stopped (``Process.terminate()`` hung the daemon's exit).
So from the run phase on, a forked child starts detached from it (see
:func:`_detach_forked_child`); the detach's own forks come before, and
``subprocess`` (the upgrade's spawn) runs no at-fork hooks and execs anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable, Iterator

from .._prefork._inherited import LIFECYCLE_SIGNALS

__all__ = [
    "LATE_IGNORED",
    "LIFECYCLE_SIGNALS",
    "ignoring_late_signals",
    "lifecycle_signals_held",
    "loop_takes_over",
    "own_signal",
    "release_signals",
    "unhandled",
]

#: Ignored once the loop has closed (SIGTERM/SIGINT have the forced-exit handler).
LATE_IGNORED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: Owned signals never ignored at the end: the forced exit's, and the child watcher's.
_NOT_LATE_IGNORED = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, *LATE_IGNORED})


#: Held signals that reached a thread of the program's while held (see the docstring).
_remembered: list[int] = []
#: Set once the event loop installs its handlers (see :func:`loop_takes_over`).
_loop_delivers = False
#: Every signal the run phase handles: a forked child gets their default action.
_owned: set[int] = {*LIFECYCLE_SIGNALS, signal.SIGCHLD}
#: The forking thread's mask while it forks, by thread (see :func:`_hold_for_fork`).
_mask_before_fork: dict[int, Iterable[int]] = {}
_at_fork_registered = False


def _remember(signum: int, frame: object) -> None:
    if _loop_delivers:
        # The loop's wakeup fd got this signal's number from the C handler: the
        # loop delivers it; remembered as well, it would arrive twice (a second
        # SIGTERM forces the exit).
        return
    if signum not in _remembered:
        # Pending signals coalesce: one of each, in the order they came.
        _remembered.append(signum)


def loop_takes_over() -> None:
    """Called once the loop's signal handlers are installed.

    From then on a signal that reaches a program thread is written to the
    loop's wakeup fd by CPython's C handler, whichever Python handler is
    still registered: only the ones remembered before are raised again.
    Not sooner: asyncio sets its wakeup fd in its first
    ``add_signal_handler()``, and a signal tripped before that was written
    nowhere, so dropped here too it was lost (the daemon ran on after a
    SIGTERM). One tripped while the loop installs them may be both
    remembered and written: the loop reads both in one turn, which it takes
    for one signal delivered twice.
    """
    global _loop_delivers
    _loop_delivers = True


def unhandled(signum: int) -> bool:
    """Whether ``signum`` has no handler of the run phase's yet (default, or only remembered)."""
    return signal.getsignal(signum) in (signal.SIG_DFL, _remember)


def own_signal(signum: int) -> None:
    """``signum`` has a handler of the daemon's (``on_signal``): a forked child resets it."""
    _owned.add(signum)


def _hold_for_fork() -> None:
    # From the fork until the child has dropped our handlers, a signal for the
    # child (a process group's SIGTERM) would still reach the daemon's loop:
    # held, it waits in the child for its default action.
    _mask_before_fork[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, _owned)


def _restore_after_fork() -> None:
    mask = _mask_before_fork.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _detach_forked_child() -> None:
    """In a child forked from the daemon: a process of its own, as far as signals go.

    No wakeup fd (the daemon's loop's), the default action for every signal the
    daemon handles (SIGINT: KeyboardInterrupt, as in a fresh interpreter), none
    of them blocked; runs before the log writer's own at-fork reset.
    """
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in _owned:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, default)
    _mask_before_fork.clear()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _owned)


def _register_at_fork() -> None:
    global _at_fork_registered
    if not _at_fork_registered:
        _at_fork_registered = True
        os.register_at_fork(
            before=_hold_for_fork,
            after_in_parent=_restore_after_fork,
            after_in_child=_detach_forked_child,
        )


def lifecycle_signals_held(handled: Iterable[int] = ()) -> contextlib.AbstractContextManager[None]:
    """The run phase, from before the pid is written: lifecycle signals wait, none is fatal.

    Blocked in this thread (and the threads it starts) until the runtime
    releases them once the loop's handlers exist (:func:`release_signals`).
    At the end, whatever happened, nothing is left held and SIGHUP, SIGUSR1
    and SIGUSR2 are ignored: after a failure before the loop ran (its handlers
    never installed) a pending SIGHUP must not end the exit. From here on, a
    child the program forks is detached from the daemon's signals.

    Args:
        handled: the ``on_signal`` signals: held and ignored at the end as well.
    """
    global _loop_delivers
    _register_at_fork()
    # A second run() in this process: its loop has no handlers yet.
    _loop_delivers = False
    handled = tuple(handled)
    return _held_then_late_ignored(
        (*LIFECYCLE_SIGNALS, *handled),
        remember=threading.active_count() > 1,
        ignored=(*LATE_IGNORED, *handled),
    )


def ignoring_late_signals() -> contextlib.AbstractContextManager[None]:
    """Around the loop's close: afterwards SIGHUP, SIGUSR1, SIGUSR2 and ``on_signal``'s are ignored.

    Blocked while the loop puts back their default action, then ignored (one
    pending meanwhile is discarded), then unblocked: never a moment in which
    one would end the process. Blocked here, one goes to another thread:
    aiodaemon's own block every signal, a program's thread still running
    then is the program's risk.
    """
    late = (*LATE_IGNORED, *(s for s in _owned if s not in _NOT_LATE_IGNORED))
    return _held_then_late_ignored(late, ignored=late)


def release_signals(signals: Iterable[int]) -> None:
    """Unblock ``signals``: the pending (or remembered) ones are delivered to their handlers now."""
    signals = tuple(signals)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    for signum in signals:
        if signal.getsignal(signum) is _remember:
            # Nobody took it over: back to what blocking alone would have left.
            signal.signal(signum, signal.SIG_DFL)
        if signum in _remembered:
            _remembered.remove(signum)
            signal.raise_signal(signum)


@contextlib.contextmanager
def _held_then_late_ignored(
    held: tuple[int, ...], *, remember: bool = False, ignored: tuple[int, ...] = LATE_IGNORED
) -> Iterator[None]:
    """Block ``held`` (and, with ``remember``, catch it); at the end ignore ``ignored``,
    then unblock ``held``."""
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    previous = {signum: signal.signal(signum, _remember) for signum in held} if remember else {}
    try:
        yield
    finally:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)
        for caught, handler in previous.items():
            # The run never installed its own (it failed before the loop ran).
            if signal.getsignal(caught) is _remember:
                signal.signal(caught, signal.SIG_DFL if handler is None else handler)
        release_signals(held)
