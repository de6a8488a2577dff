"""The ``aiodaemon`` command's entry point (console script and ``python -m aiodaemon``).

Kept tiny on purpose: Ctrl-C is the command's own from the first lines of
aiodaemon that run. Until then (Python's start, the console script's own
imports) it is the interpreter's; an interrupt in the 20-70 ms the command
used to load before :func:`main` ran printed a ``KeyboardInterrupt`` traceback
through importlib's frames.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Sequence
    from types import FrameType
else:
    # The C module Python set SIGINT up with, loaded already: the `signal`
    # module would first import enum (~5 ms in which Ctrl-C is not ours).
    import _signal

__all__ = ["main"]

#: The status of a command ended by Ctrl-C, as a shell reports it.
_INTERRUPTED = 128 + 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aiodaemon`` console script and ``python -m aiodaemon``.

    Args:
        argv: the command line after the program's name; None (the console
            script, ``python -m``) means the process's own, and that the process
            is ours: Ctrl-C while the command loads or after it ended exits 130
            at once, without a traceback. A caller in its own process (tests)
            keeps its SIGINT handler.

    Returns:
        The exit status (see the help of each command).
    """
    ours = argv is None
    held = _held_at_import or (ours and _hold_interrupts())
    try:
        from ._dispatch import dispatch

        if held:
            # Inside the try: from here a KeyboardInterrupt is caught, below or
            # by the command (which says what a reload or upgrade goes on with).
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        return dispatch(argv)
    except KeyboardInterrupt:
        # Ctrl-C before the command was known (its arguments being parsed):
        # nothing was started, signalled or asked, so nothing to say.
        return _INTERRUPTED
    finally:
        if held and ours:
            # The command has ended: an interrupt while the interpreter winds
            # down (atexit, module teardown) would print "Exception ignored".
            _signal.signal(_signal.SIGINT, _exit_interrupted)


def _hold_interrupts() -> bool:
    """Let Ctrl-C exit 130 at once if SIGINT has Python's handler; whether it had.

    A handler the caller set, or SIGINT ignored (``nohup``, a background job
    of a script), stays as it is.
    """
    if _signal.getsignal(_signal.SIGINT) is not _signal.default_int_handler:
        return False
    _signal.signal(_signal.SIGINT, _exit_interrupted)
    return True


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while nothing of the command runs yet, or any more: exit 130, without a word.

    A handler, not ``SIG_DFL``: the kernel drops a signal left at its default
    action when we are PID 1 (a container's entrypoint), and 130 is what the
    command answers to Ctrl-C at any other moment.
    """
    # os._exit: nothing was acquired yet (or all of it released), and the
    # unwinding of a half-done import is what printed the traceback.
    os._exit(_INTERRUPTED)


# Imported by the console script (argv[0] is the command), hold Ctrl-C from
# here rather than from main(): the script runs a regular expression on
# argv[0] between this import and its call of main(). Anyone else importing
# this module (tests calling main() in their process) keeps its handler.
_held_at_import = (
    os.path.basename((getattr(sys, "argv", None) or [""])[0]) == "aiodaemon" and _hold_interrupts()
)
