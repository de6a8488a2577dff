"""PID 1 in a container: a tiny synchronous init in front of the daemon.

As PID 1 we fork once. The parent stays PID 1: it closes every descriptor
but 0-2, reaps every child the kernel hands it (orphans included), forwards
signals, and exits with the daemon's status. The daemon runs in a process
group of its own, so each signal reaches it once, through the init; on a
terminal (``docker run -t``) that group is the foreground one, so the daemon
may read the terminal and Ctrl-C reaches it directly. The daemon runs in the child,
where asyncio and uvloop keep sole ownership of SIGCHLD and of their own
subprocesses: a reaper inside the daemon's process would steal exit statuses
from ``asyncio.create_subprocess_*``, and uvloop refuses
``add_signal_handler(SIGCHLD)`` anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable

__all__ = [
    "FORWARDED_SIGNALS",
    "detach_refusal",
    "end_on_early_signals",
    "namespace_refusal",
    "split_init",
    "under_container_init",
]

#: Signals PID 1 passes on to the daemon.
FORWARDED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)

#: The forwarded signals whose default action ends a process (SIGINT has
#: Python's own handler, SIGWINCH is ignored by default).
_ENDING_SIGNALS = (
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def end_on_early_signals() -> None:
    """As PID 1, let a stop signal end us before :func:`split_init`, as it ends any process.

    The kernel drops a signal sent to a namespace's init that has no handler
    for it, so a ``docker stop`` or a deleted pod's SIGTERM while the program
    still imports was lost: the daemon started anyway and the runtime killed
    it at the end of its grace period. Only signals left at their default
    action are taken: a handler the program installed stays its own.
    """
    if os.getpid() != 1:
        return
    for signum in _ENDING_SIGNALS:
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _end)


def _end(signum: int, frame: object) -> None:
    """The default action the kernel does not take for an init: exit, with a shell's status."""
    # No cleanup, as for a killed process: nothing runs yet that needs any.
    os._exit(128 + signum)


def detach_refusal(instead: str) -> str:
    """Why a detach as PID 1 is refused (run(), start, PEP 3143), and what to do ``instead``."""
    # A container's entrypoint, or unshare --pid: the kernel kills every
    # process of the namespace once its PID 1 exits.
    return (
        "cannot detach as PID 1 (a container's entrypoint): the daemon would be"
        f" killed when this process exits; run it in the foreground ({instead})"
    )


def namespace_refusal(instead: str) -> str:
    """Why a detach whose first fork is PID 1 of a new pid namespace is refused.

    ``unshare --pid`` without ``--fork`` leaves the launcher where it was, and
    makes its first child the namespace's init: that child exits once the
    daemon is ready, and the kernel kills the daemon with it. ``instead``: as
    for :func:`detach_refusal`.
    """
    return (
        "cannot detach into a new pid namespace (unshare --pid without --fork?): the"
        " first fork is its PID 1, and the daemon would be killed when that process"
        f" exits; run it in the foreground ({instead}), under 'unshare --pid --fork'"
    )


def _ignore(signum: int, frame: object) -> None:
    """Never runs (the signals are blocked); it exists because the kernel drops
    signals sent to a namespace's init that has no handler for them."""


_split = False


def under_container_init() -> bool:
    """Whether this process is the daemon half of :func:`split_init` (PID 1 is our init)."""
    return _split


def split_init(held: Iterable[int], forward: Iterable[int] = ()) -> None:
    """Fork; return in the child (the daemon), never return in the parent (init).

    Args:
        held: the signals the run phase handles (its ``LIFECYCLE_SIGNALS``):
            the child keeps them blocked until its loop lets them in. Given
            by the caller: this side never imports the run phase.
        forward: signals to pass on besides :data:`FORWARDED_SIGNALS` (the
            daemon's ``on_signal`` ones), held in the child as well.
    """
    global _split
    forward = tuple(forward)
    watched = {*FORWARDED_SIGNALS, *forward, signal.SIGCHLD}
    # Blocked first: a blocked signal stays pending, even for an init, until the
    # init waits for it; one arriving before the block, with _ignore in place,
    # would have run _ignore and been lost.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    for signum in watched:
        signal.signal(signum, _ignore)
    child = os.fork()
    if child == 0:
        _split = True
        # A group of its own: a signal sent to the init's group (Ctrl-C on the
        # container's terminal, kill -TERM -PGID) reaches the daemon once, as the
        # init forwards it, not twice, which would force its exit.
        os.setpgid(0, 0)
        _take_the_terminal()
        for signum in watched:
            signal.signal(signum, signal.SIG_DFL)
        # The ones the run phase handles stay blocked: it blocks them again and
        # lets them in once its loop handles them. Unblocked here, one the init
        # forwarded meanwhile (a reload's SIGHUP) took its default action and
        # ended the daemon.
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        signal.pthread_sigmask(signal.SIG_BLOCK, (*held, *forward))
        return
    # The daemon owns what was acquired (listeners, pidfile, log files). A copy
    # kept here would keep a listener the daemon closed accepting connections
    # into its backlog; the init itself needs only signals and waitpid.
    os.closerange(3, _fd_limit())
    _serve_as_init(child, watched)


def _take_the_terminal() -> None:
    """Make our group the terminal's foreground group, when stdin is the init's terminal.

    Else the daemon, in a group of its own, would be a background job on it:
    stopped (SIGTTIN, SIGTTOU) as soon as it reads the terminal or sets its
    modes, and Ctrl-C would reach the init only (tini's ``isolate_child``).
    """
    try:
        if os.tcgetpgrp(0) != os.getpgid(os.getppid()):
            return
    except OSError:
        return  # not a terminal, or not the one we were started on
    # A background group may take the terminal only with SIGTTOU blocked.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(0, os.getpgrp())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _fd_limit() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 1 << 20


def _serve_as_init(child: int, watched: set[int]) -> None:
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, info.si_signo)
            continue
        status = _reap_all(child)
        if status is not None:
            # Orphans that exit after this still have a reaper: the kernel kills
            # every process of the namespace when its init leaves.
            _reap_all(child)
            os._exit(_exit_code(status))


def _reap_all(child: int) -> int | None:
    """Reap every exited child; return the daemon's wait status if it was among them."""
    result = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result
        if pid == 0:
            return result
        if pid == child:
            result = status


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
