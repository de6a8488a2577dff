"""Asking the pidfile's holder over its control socket, or learning that it has none.

An upgrade hands the pidfile and the control socket from the old daemon to
its child a moment apart, so a peer that is the holder's parent or child is
waited for, briefly. Anything else at the path (another user's file, another
process's listener) is not the daemon's socket: :class:`ControlUntrusted` is
raised before a byte is sent, and the commands go on as for a daemon without a
control socket (pidfile and signals), saying why with :func:`say_ignored`.
Synchronous and light, for the CLI.
"""

from __future__ import annotations

import os
import time

from .._prefork._control_protocol import HANDOVER_WAIT
from .._prefork._messages import say
from .._prefork._pidfile_status import read_pidfile
from .._prefork._procfs import signal_meets, stat_field
from ._control_client import ControlMismatch, ControlUntrusted, ask

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["ControlUntrusted", "ask_holder", "no_control_hint", "related", "say_ignored"]

#: How long a command keeps asking while the pidfile and the control socket
#: name a parent and its child: an upgrade hands them over a moment apart,
#: longer on a loaded machine or when the new process is held up (stopped,
#: descheduled, in a slow ``fsync``), which the old daemon waits out for
#: HANDOVER_WAIT seconds before it kills it and takes the pidfile back; the
#: second more is for that rollback. An impostor is neither, and fails at once.
HANDOVER_GRACE = HANDOVER_WAIT + 1.0
_HANDOVER_PAUSE = 0.02


def ask_holder(
    control: StrPath,
    request: dict[str, Any],
    *,
    holder: int,
    timeout: float,
    follow: StrPath | None = None,
    said: float | None = None,
    watch: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """Send ``request`` to ``holder``'s control socket, waiting out an upgrade's hand-over.

    Args:
        control: the control socket.
        request: one protocol message.
        holder: the pid verified to hold the pidfile's lock.
        timeout: seconds for the exchange (and at most the hand-over wait).
        follow: the pidfile, to ask its new holder when the lock passes on
            meanwhile; None keeps asking ``holder`` (a caller that signals it).
        said: the seconds a timeout names (see :func:`._control_client.exchange`).
        watch: called while the answer is awaited (see :func:`._control_client.exchange`).

    Returns:
        The answer and the pid that gave it.

    Raises:
        ControlUntrusted: the socket is not the holder's (nothing was sent).
        ControlError: any other failure (see :func:`._control_client.ask`).
    """
    handover_ends = time.monotonic() + min(HANDOVER_GRACE, timeout)
    while True:
        try:
            answer = ask(control, request, holder=holder, timeout=timeout, said=said, watch=watch)
            return answer, holder
        except ControlMismatch as exc:
            if not related(exc.peer, holder) or time.monotonic() > handover_ends:
                raise
            time.sleep(_HANDOVER_PAUSE)
            if follow is not None:
                current = read_pidfile(follow).running_pid
                if current is None:
                    raise
                holder = current


def say_ignored(exc: ControlUntrusted, instead: str) -> None:
    """Warn, in one line on stderr, that the socket was ignored and what is done instead."""
    say(f"warning: {exc}, so it is ignored; {instead}")


def no_control_hint(pid: int) -> str:
    """Why ``pid`` may serve nothing at the default control path, in brackets, for a note.

    A daemon without a SIGUSR2 handler predates upgrades, and with them the
    control socket (aiodaemon 0.1.0), as ``upgrade`` says: no ``--control``
    would find one. Otherwise the likely cause is a socket served elsewhere.
    """
    import signal  # here: only once the socket is found absent (~0.5 ms to status)

    if signal_meets(pid, signal.SIGUSR2) == "default":
        return (
            f"(pid {pid} has no handler for SIGUSR2, as a daemon of aiodaemon 0.1.0, which "
            "predates the control socket: 'aiodaemon restart' gives it one)"
        )
    return "(started with --control? pass it here too)"


def related(peer: int, holder: int) -> bool:
    """Whether ``peer`` and ``holder`` are parent and child (an upgrade handing over)."""
    return peer == _parent_of(holder) or _parent_of(peer) == holder


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid``, None once it is gone."""
    return stat_field(pid, 1)
