"""One signal per daemon from concurrent commands: the first claims it, the rest do not send.

Without a control socket ``stop`` falls back to SIGTERM, and a second SIGTERM
during the shutdown forces the exit (hooks cut short). Two ``stop`` at once
(an operator's and a deploy script's) would each send one. So the one about
to signal first binds an abstract unix socket named after the daemon (its pid
and start time: a recycled pid names another) and the action; while it is
bound, another ``stop`` finds it taken, checks with ``SO_PEERCRED`` that root
or our own uid holds it (a stranger squatting the name is ignored: we signal
anyway), and waits for the exit instead. The kernel frees the name when the
claimer exits, however it exits. ``upgrade`` without a control socket claims
its SIGUSR2 the same way: the daemon refuses a second upgrade during one only
in its log, and both commands would then see the one new process take over
and report it as their own. A ``stop`` that only waits (the daemon stopping
already) listens on a watch beside the claim, where the daemon tells it its
exit as it tells the claim (:func:`watch_stop`). Synchronous and light, for the CLI.
"""

from __future__ import annotations

import _socket
import errno
import os
import sys

from .._prefork._pidfile_status import abstract_listener
from .._prefork._procfs import signal_claim
from ._control_client import read_to_end

__all__ = ["WATCH_SLOTS", "claim_signal", "claim_stop", "watch_names", "watch_stop"]

#: Names a waiting ``stop`` may listen on to hear the exit (``_exit_notice.WATCH_SLOTS``).
WATCH_SLOTS = 8


class Claim:
    """The claim on sending the daemon its signal, or a watch; release by closing (or exiting)."""

    def __init__(self, sock: _socket.socket | None) -> None:
        self._sock = sock

    def told(self, pid: int, timeout: float, limit: int = 65536) -> bytes:
        """What ``pid`` wrote to the claim as it ended (``_exit_notice.tell_exit``); b"" if none.

        Its connection waits in the queue, never accepted until now (the other
        ``stop``'s looks at the claim too): only the one ``SO_PEERCRED`` says
        ``pid`` made is read, to its end, within ``timeout`` and ``limit``.
        """
        if self._sock is None:
            return b""
        self._sock.setblocking(False)
        # Every one of ``pid``'s: the graceful end's line, then a forced exit's
        # on a connection of its own (a second signal during the final drain).
        told = b""
        while len(told) < limit:
            try:
                # What socket.socket.accept wraps (typeshed does not list it).
                fd, _ = self._sock._accept()  # type: ignore[attr-defined]
            except OSError:
                break  # none (left) in the queue
            conn = _socket.socket(fileno=fd)
            try:
                creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
                if int.from_bytes(creds[:4], sys.byteorder, signed=True) == pid:
                    told = read_to_end(conn, timeout, limit, told)
            except OSError:
                break
            finally:
                conn.close()
        return told

    def close(self) -> None:
        """Release the claim."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def claim_stop(pid: int) -> Claim | int:
    """Claim the SIGTERM of ``pid``, or the pid of the ``stop`` that claimed it first.

    Returns:
        A :class:`Claim` (signal, then close it once done), or the pid of the
        trusted process that holds the claim (do not signal: wait).
    """
    return claim_signal(pid, "stop")


def claim_signal(pid: int, action: str) -> Claim | int:
    """Claim the signal that begins ``action`` in ``pid``, or the pid of the command that did.

    Args:
        pid: the daemon.
        action: the command's name ("stop", "upgrade"): one claim each.

    Returns:
        A :class:`Claim` (signal, then close it once done with what followed),
        or the pid of the trusted process that holds the claim (do not signal).
    """
    name = signal_claim(action, pid)  # with the start time: a reused pid is another name
    if name is None:
        return Claim(None)  # gone, or /proc will not tell: nothing to share
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.bind(name)
        # Never accepted from: each other stop's look at the claim stays queued
        # until we exit. With a short queue the third found it full, could not
        # tell who held the claim, and signalled (forcing the exit).
        sock.listen(_socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            return Claim(None)
        holder = _holder_of(name)
        return Claim(None) if holder is None else holder
    return Claim(sock)


def _holder_of(name: str) -> int | None:
    """The pid holding the abstract ``name``, if it is root or our own uid."""
    listener = abstract_listener(name, wait=1.0)
    if listener is None:
        return None  # released meanwhile, or not a listener: signal
    holder, uid = listener
    return holder if uid in (0, os.geteuid()) else None


def watch_names(pid: int) -> list[str]:
    """The abstract names a waiting ``stop`` may hear ``pid``'s exit under; [] if unknown."""
    claim = signal_claim("stop", pid)
    return [] if claim is None else [f"{claim}-watch{k}" for k in range(WATCH_SLOTS)]


def watch_stop(pid: int) -> Claim:
    """Listen where the stopping ``pid`` tells its exit, for a ``stop`` that only waits.

    For a ``stop`` with neither a watched stop connection nor the SIGTERM's
    claim: the daemon was stopping already and its loop did not answer, its
    control socket had closed, or another ``stop`` holds the claim. The first
    free one of :data:`WATCH_SLOTS` names; an empty :class:`Claim` when all are
    taken (the ``stop`` then says only "stopped").
    """
    for name in watch_names(pid):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.bind(name)
            # The daemon's connections only: a graceful end's, then a forced one's.
            sock.listen(4)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            break
        return Claim(sock)
    return Claim(None)
