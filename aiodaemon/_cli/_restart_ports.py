"""``restart`` by a user who is not root: a port the new daemon could not bind.

A daemon started by root binds a port below 1024, then drops to its account.
That account may stop it, but the start that follows would fail to bind the
port: the service would be down, the old daemon gone. The kernel's rule is
known beforehand (a port below ``net.ipv4.ip_unprivileged_port_start`` needs
``CAP_NET_BIND_SERVICE``), so ``restart`` checks it before it stops anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._prefork._addresses import InetAddress, ListenAddress
from .._prefork._procfs import effective_capabilities
from .._prefork._sockets import is_privileged_port

__all__ = ["unbindable_port"]

#: capabilities(7): the capability that binds ports below the unprivileged start.
_CAP_NET_BIND_SERVICE = 10


def unbindable_port(listen: Mapping[str, ListenAddress]) -> tuple[str, InetAddress] | None:
    """The first TCP entry of ``listen`` this process may not bind, with its name; else None."""
    for name, address in listen.items():
        if isinstance(address, InetAddress) and is_privileged_port(address):
            return None if _may_bind_privileged_ports() else (name, address)
    return None


def _may_bind_privileged_ports() -> bool:
    """Whether our effective capabilities hold ``CAP_NET_BIND_SERVICE`` (root's do)."""
    capabilities = effective_capabilities()
    # No /proc to tell: let the start try, as it would have.
    return capabilities is None or bool(capabilities >> _CAP_NET_BIND_SERVICE & 1)
