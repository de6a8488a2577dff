"""What a starter leaves a daemon: a blocked mask, ignored SIGCHLD and SIGQUIT, a low fd limit.

Signals. A signal mask and ignored dispositions survive ``exec``, so a daemon inherits
whatever its starter had (a shell's ``trap '' CHLD``, a supervisor written in a
language that blocks signals in its threads, ``nohup``). daemon(7) resets both
first thing. Left alone, a blocked SIGTERM stays pending for ever (``stop``
ends in SIGKILL), a blocked SIGCHLD hangs uvloop's subprocess waits, and an
ignored SIGCHLD makes the kernel reap children itself, so the launcher's own
``waitpid`` fails and ``asyncio`` subprocesses never learn their exit status.
An ignored SIGQUIT (``sh`` ignores SIGINT and SIGQUIT in its background jobs:
a CI or boot script's ``aiodaemon start ... &``) took away the one way to end a
daemon stuck where no Python code runs, in the daemon and every program it
starts (see docs/lifecycle.md).

The open-files limit. The soft ``RLIMIT_NOFILE`` of 1024 that shells and
systemd hand out is a compatibility default for programs using ``select()``;
the hard limit (systemd: 524288) is what a service may use. A server at the
soft limit loses connections silently under uvloop: libuv accepts and closes
them at EMFILE and nothing is logged. So a daemon raises its soft limit to the
hard one, as Go programs do since 1.19 and systemd's guidance asks of programs
that need many descriptors ("File Descriptor Limits", Poettering 2021).
"""

from __future__ import annotations

import resource
import signal

from ..exceptions import StartupError

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "LIFECYCLE_SIGNALS",
    "MIN_NOFILE",
    "address_space_limit",
    "raise_descriptor_limit",
    "reset_inherited_signals",
]


#: Every signal the run phase handles on its loop (SIGUSR2: the upgrade service).
LIFECYCLE_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


#: Ignored dispositions a daemon never keeps: SIGCHLD's breaks waiting for
#: children, SIGQUIT's the way to end a stuck daemon (its default action).
_RESET_WHEN_IGNORED = (signal.SIGCHLD, signal.SIGQUIT)


def reset_inherited_signals(*, successor: bool = False, handled: Iterable[int] = ()) -> None:
    """Unblock every signal in this thread and give an ignored SIGCHLD or SIGQUIT its default.

    Other ignored dispositions stay: the program may have chosen them before
    calling ``run()`` (one that wants SIGQUIT ignored says so with an
    ``on_signal`` handler), and the ones aiodaemon relies on (SIGTERM, SIGINT,
    SIGHUP, SIGUSR1, SIGUSR2) get handlers of their own. Python itself ignores
    SIGPIPE and SIGXFSZ, on purpose.

    Args:
        successor: an upgrade's new process: its old daemon held
            :data:`LIFECYCLE_SIGNALS` across the exec (see
            ``_handoff.spawn_successor``), and they stay held until the run
            phase handles them; one sent meanwhile waits instead of ending it.
        handled: the program's ``on_signal`` signals: for a successor, held
            as well (the old daemon held its own); any other is released.
    """
    # Nothing of aiodaemon's own is held yet (see _run._signal_mask).
    held = (*LIFECYCLE_SIGNALS, *handled) if successor else ()
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    for signum in _RESET_WHEN_IGNORED:
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


#: Descriptors below which no daemon can run: aiodaemon's own are ~17 at rest
#: (stdio, pidfile, log, control socket, the loop's epoll, eventfd and signal
#: pipes), and libuv aborts the process (SIGABRT, files left behind) when it
#: runs out while the loop starts. 32 leaves the program a few of its own.
MIN_NOFILE = 32


def raise_descriptor_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; refuse one too low for any daemon.

    Returns:
        The soft limit now in force.

    Raises:
        StartupError: even the hard limit is below :data:`MIN_NOFILE`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _kernel_maximum() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and target is not None and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # the kernel's fs.nr_open is lower: keep what we were given
    if soft != resource.RLIM_INFINITY and soft < MIN_NOFILE:
        raise StartupError(
            f"RLIMIT_NOFILE is {soft}: a daemon needs at least {MIN_NOFILE} open files;"
            " raise it (ulimit -Hn and -n, or LimitNOFILE= in a unit)"
        )
    return soft


def _kernel_maximum() -> int | None:
    """``fs.nr_open``, the most descriptors a process may have, for an unlimited hard limit."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def address_space_limit() -> str:
    """``RLIMIT_AS is N MiB (...)``: what an out-of-memory message adds when the limit is finite."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return ""
    return f"RLIMIT_AS is {limit >> 20} MiB (ulimit -v, LimitAS= in a unit)"
