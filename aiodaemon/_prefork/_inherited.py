"""Signal state inherited from whoever started us: a blocked mask, an ignored SIGCHLD.

A signal mask and ignored dispositions survive ``exec``, so a daemon inherits
whatever its starter had (a shell's ``trap '' CHLD``, a supervisor written in a
language that blocks signals in its threads, ``nohup``). daemon(7) resets both
first thing. Left alone, a blocked SIGTERM stays pending for ever (``stop``
ends in SIGKILL), a blocked SIGCHLD hangs uvloop's subprocess waits, and an
ignored SIGCHLD makes the kernel reap children itself, so the launcher's own
``waitpid`` fails and ``asyncio`` subprocesses never learn their exit status.
"""

from __future__ import annotations

import signal

__all__ = ["reset_inherited_signals"]


def reset_inherited_signals() -> None:
    """Unblock every signal in this thread and give an ignored SIGCHLD its default.

    Other ignored dispositions stay: the program may have chosen them before
    calling ``run()``, and the ones aiodaemon relies on (SIGTERM, SIGINT,
    SIGHUP, SIGUSR1, SIGUSR2) get handlers of their own. Python itself ignores
    SIGPIPE and SIGXFSZ, on purpose.
    """
    # Nothing of aiodaemon's own is held yet (see _run._signal_mask).
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
