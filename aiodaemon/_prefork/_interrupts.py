"""SIGTERM, SIGHUP and SIGQUIT end a waiting command as Ctrl-C does: with its words.

``timeout 30 aiodaemon stop`` (SIGTERM), systemd giving up on an
``ExecReload=`` (SIGTERM), a closed terminal (SIGHUP) and Ctrl-\\ (SIGQUIT)
ended a waiting ``reload``, ``upgrade`` or ``stop``, and a detached start's
launcher waiting for the daemon to be ready, by their default action, without
a word: nobody learnt of the reload, stop or start that goes on. Here each
raises :exc:`KeyboardInterrupt`, which the command meets as it meets Ctrl-C,
and the command exits 128 + n, as a shell reports the signal. The CLI's
commands and the launcher (:mod:`._launcher`) share it; a launch gets the
default actions back first and installs them again for its wait.

Only ``signal``: ``aiodaemon.pep3143`` loads the launcher into synchronous programs.
"""

from __future__ import annotations

import signal

__all__ = ["end_interrupts", "interrupt_on_signals", "interrupting_signal", "restore_signals"]

#: What ends a command as Ctrl-C does, besides SIGINT (Python's own handler).
_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

#: The signals given our handler (they had their default action).
_replaced: list[int] = []
#: The signal that interrupted the command, once one did (or the command ended).
_interrupted_by: int | None = None


def _interrupt(signum: int, frame: object) -> None:
    global _interrupted_by
    # A second one (a `timeout -k` escalation aside) must not cut the words short.
    if _interrupted_by is None:
        _interrupted_by = signum
        raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """Make SIGTERM, SIGHUP and SIGQUIT raise :exc:`KeyboardInterrupt` from now on.

    Only where they have their default action: a signal the caller ignores
    (``nohup``) or handles (PID 1's early handlers, a test's) stays so.
    """
    for signum in _SIGNALS:
        if signum in _replaced or signal.getsignal(signum) != signal.SIG_DFL:
            continue
        try:
            signal.signal(signum, _interrupt)
        except ValueError:
            return  # called from a thread (a caller of main()): only the main thread may
        _replaced.append(signum)


def restore_signals() -> None:
    """Give the signals :func:`interrupt_on_signals` replaced their default action back."""
    while _replaced:
        signal.signal(_replaced.pop(), signal.SIG_DFL)


def interrupting_signal() -> int:
    """The signal that interrupted the command (SIGINT unless another did); later ones are not."""
    global _interrupted_by
    if _interrupted_by is None:
        _interrupted_by = signal.SIGINT
    return _interrupted_by


def end_interrupts() -> None:
    """The command has ended: the signals have their default action again."""
    global _interrupted_by
    restore_signals()
    _interrupted_by = None
