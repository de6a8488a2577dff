"""``restart``: the addresses the new daemon would bind, tried before the old one is stopped.

``restart`` onto a port another program holds stopped the running daemon and
then failed to bind: the service was down. Each TCP address the new daemon
would bind and the old one does not serve is bound here first, then closed;
what lies at a unix path is judged by the start's own probe (a live socket,
a full backlog, a file that is no socket, another user's socket), which
removes and creates nothing. A failure is the start's own error, said before
anything is stopped.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Mapping

from .._prefork._addresses import ListenAddress, UnixAddress
from .._prefork._sockets import open_listeners, unix_refusal
from ..exceptions import StartupError

__all__ = ["unbindable_address"]


def unbindable_address(
    listen: Mapping[str, ListenAddress],
    served: Collection[str] | None,
    *,
    health: bool,
    owner: int | None = None,
) -> StartupError | None:
    """Why the new daemon could not bind an address of ``listen``: the start's error; else None.

    Args:
        listen: name -> address, as the new daemon would bind them.
        served: the addresses the running daemon serves, as its status says;
            None when it did not say (no control socket, no answer): no port
            is tried then, as a port of its own would fail here and bind once
            it is stopped, and a live socket at a unix path may be its own too;
            a file there that is no socket is refused all the same.
        health: whether a socket named ``health`` is ``health=``'s.
        owner: the uid the new daemon drops to (``--user``).
    """
    held_ports = {_port(address) for address in served or ()}
    for name, address in listen.items():
        if isinstance(address, UnixAddress):
            if served is not None and str(address) in served:
                continue  # its own: freed by its stop
            refused = unix_refusal(name, address, owner=owner, health=health)
            cause = None if refused is None else refused.__cause__
            if refused is not None and (served is not None or not _maybe_its_own(cause)):
                return refused
            continue
        # Port 0 always binds; a port the old daemon serves is its own, freed by its stop.
        if served is None or address.port == 0 or address.port in held_ports:
            continue
        try:
            # The start's own bind (SO_REUSEADDR, SO_REUSEPORT when asked): it
            # fails where the real one would, and a listener closed without a
            # connection leaves no TIME_WAIT behind to fail the real one.
            open_listeners({name: address}, env={}, health=health).close()
        except StartupError as exc:
            return exc
    return None


def _maybe_its_own(cause: BaseException | None) -> bool:
    """Whether a refusal may be of the running daemon's own socket: a live one."""
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def _port(address: str) -> int | None:
    """The port of a served ``host:port`` / ``[v6]:port``; None for a unix path."""
    if address.startswith("unix:"):
        return None
    try:
        return int(address.rpartition(":")[2])
    except ValueError:
        return None
