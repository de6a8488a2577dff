"""Whether some process holds a socket bound to a given socket file (``sock_diag``).

A connection refused at a socket file says nobody *listens* there, not that
nobody holds it: another daemon may have bound it a moment ago and listen
only once detached (the control socket listens in the daemon, so that
``SO_PEERCRED`` names it). Removing that file as stale would take its socket
from it. The kernel knows every bound Unix socket and the inode of its file:
``NETLINK_SOCK_DIAG`` with ``UDIAG_SHOW_VFS``, as ``ss -x`` asks. Never
imports asyncio.
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["bound_file", "bound_socket_exists"]

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x01
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_UDIAG_SHOW_VFS = 0x02
_UNIX_DIAG_VFS = 1
#: nlmsghdr, then unix_diag_req (family, protocol, pad, states, ino, show, cookie[2]).
_REQUEST = struct.Struct("=IHHII BBHIIIII")
_HEADER = struct.Struct("=IHHII")
#: unix_diag_msg: family, type, state, pad, ino, cookie[2].
_MESSAGE = struct.Struct("=BBBBIII")
_ATTRIBUTE = struct.Struct("=HH")
_VFS = struct.Struct("=II")


def bound_socket_exists(st: os.stat_result) -> bool | None:
    """Whether a live socket is bound to the socket file ``st`` describes.

    Returns:
        True or False; None when the kernel cannot be asked (no ``sock_diag``
        for Unix sockets): the caller decides as it did without.
    """
    # The kernel reports the file's device as its own dev_t (major << 20 | minor).
    device = (os.major(st.st_dev) << 20) | os.minor(st.st_dev)
    sock = _diag_socket()
    if sock is None:
        return None
    with sock:
        try:
            # Every Unix socket (a dump), whatever its inode and cookie.
            _ask(sock, _NLM_F_DUMP, inode=0, cookie=0)
            found = False
            while True:
                data = sock.recv(65536)
                if not data:
                    return None
                for kind, body in _messages(data):
                    if kind == _NLMSG_DONE:
                        return found
                    if kind == _NLMSG_ERROR:
                        return None
                    if kind == _SOCK_DIAG_BY_FAMILY and _vfs(body) == (st.st_ino, device):
                        found = True
        except (OSError, struct.error):
            return None


def bound_file(sock: socket.socket) -> tuple[int, int] | None:
    """The (dev, ino) of the file ``sock`` is bound to, as ``os.stat`` gives them.

    A bind by path lands wherever the kernel's walk leads at that moment; the
    kernel alone knows which inode the socket got. None when it cannot be
    asked or the socket is bound to no file.
    """
    diag = _diag_socket()
    if diag is None:
        return None
    with diag:
        try:
            # One socket, by its sockfs inode; the cookie "any" (all ones).
            _ask(diag, 0, inode=os.fstat(sock.fileno()).st_ino, cookie=0xFFFFFFFF)
            for kind, body in _messages(diag.recv(65536)):
                if kind == _SOCK_DIAG_BY_FAMILY:
                    vfs = _vfs(body)
                    if vfs is None:
                        return None
                    ino, device = vfs
                    return os.makedev(device >> 20, device & 0xFFFFF), ino
            return None
        except (OSError, struct.error):
            return None


def _diag_socket() -> socket.socket | None:
    """A sock_diag netlink socket, None when the kernel has none."""
    try:
        kind = socket.SOCK_RAW | socket.SOCK_CLOEXEC
        return socket.socket(socket.AF_NETLINK, kind, _NETLINK_SOCK_DIAG)
    except OSError:
        return None


def _ask(diag: socket.socket, flags: int, *, inode: int, cookie: int) -> None:
    """Send one Unix-socket request asking for the bound file (UDIAG_SHOW_VFS)."""
    diag.settimeout(2.0)
    diag.send(
        _REQUEST.pack(
            _REQUEST.size, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | flags, 1, 0,
            socket.AF_UNIX, 0, 0, 0xFFFFFFFF, inode, _UDIAG_SHOW_VFS, cookie, cookie,
        )
    )  # fmt: skip


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    """The (type, payload) of each netlink message in one datagram."""
    found = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        found.append((kind, data[offset + _HEADER.size : offset + length]))
        offset += (length + 3) & ~3
    return found


def _vfs(body: bytes) -> tuple[int, int] | None:
    """The (inode, kernel dev_t) of the file a ``unix_diag_msg`` says its socket is bound to."""
    offset = _MESSAGE.size
    while offset + _ATTRIBUTE.size <= len(body):
        length, kind = _ATTRIBUTE.unpack_from(body, offset)
        if length < _ATTRIBUTE.size:
            break
        if kind == _UNIX_DIAG_VFS and length >= _ATTRIBUTE.size + _VFS.size:
            ino, dev = _VFS.unpack_from(body, offset + _ATTRIBUTE.size)
            return ino, dev
        offset += (length + 3) & ~3
    return None
