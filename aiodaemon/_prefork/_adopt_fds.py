"""Upgrade hand-off, the successor's side: adopt the descriptors the old daemon handed over.

Each inherited fd is checked against what the hand-off variable claims (a
listening stream socket on the recorded address; the pidfile's inode, still at
its path, locked by this very open file) and against this program's options:
what an upgrade cannot change (the pidfile, the addresses) must be unchanged.
The hand-off itself (variable, channel, secret) is verified by :mod:`._adopt`.

Synchronous and asyncio-free: the successor adopts before its loop exists.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import StartupError
from ._config import socket_label
from ._pidfile import Pidfile
from ._sockets import Listeners

if TYPE_CHECKING:
    from ._acquire import Acquired
    from ._addresses import ListenAddress
    from ._adopt import Handoff
    from ._config import Options
    from ._control_socket import ControlSocket
    from ._logsinks import LogTargets

__all__ = [
    "adopt",
    "adopt_control",
    "adopt_listeners",
    "adopt_pidfile",
    "adopt_socket",
    "unix_files",
]


def adopt_pidfile(handoff: Handoff, path: str | None) -> Pidfile | None:
    """The inherited locked pidfile, checked against ``path`` (this program's option).

    Raises:
        StartupError: the pidfile option changed, or the fd is not that file,
            or this open file does not hold its lock.
    """
    entry = handoff.entry("pidfile")
    if entry is None and path is None:
        return None
    old = None if entry is None else entry.name
    if entry is None or path is None:
        raise StartupError(
            f"upgrade: pidfile changed from {old} to {path}; "
            "an upgrade keeps the pidfile (use restart to change it)"
        )
    fd = entry.fd
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or f"{st.st_dev}:{st.st_ino}" != entry.identity:
        raise StartupError(f"upgrade: inherited fd {fd} is not the pidfile {path}")
    if entry.name != path and not _names_file(path, st):
        # Another name is the same pidfile when it reaches the same inode: a
        # relative path made absolute in another release directory, through
        # a symlinked directory (``releases/N/run -> ../../shared/run``).
        raise StartupError(
            f"upgrade: pidfile changed from {old} to {path}; "
            "an upgrade keeps the pidfile (use restart to change it)"
        )
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except PermissionError:
        # A root-only directory after a drop: the kernel's own record of the
        # open file tells whether it still has that name.
        if os.readlink(f"/proc/self/fd/{fd}") != path or st.st_nlink == 0:
            raise StartupError(f"upgrade: pidfile {path} was removed or replaced") from None
    except OSError:
        raise StartupError(f"upgrade: pidfile {path} was removed or replaced") from None
    else:
        if not os.path.samestat(at_path, st):
            raise StartupError(f"upgrade: pidfile {path} was replaced by another file")
    holds = _holds_flock(fd)
    if isinstance(holds, OSError):
        # Unverifiable is refused too, but for what it is: not a lock lost.
        why = holds.strerror or str(holds)
        raise StartupError(
            f"upgrade: cannot check that inherited pidfile fd {fd} holds the lock: "
            f"/proc/self/fdinfo/{fd}: {why} (an upgrade needs /proc; use restart)"
        )
    if not holds:
        raise StartupError(f"upgrade: inherited pidfile fd {fd} does not hold the lock")
    return Pidfile(path, fd)


def _names_file(path: str, st: os.stat_result) -> bool:
    """Whether ``path`` (not followed if it is a symlink itself) is the file ``st`` describes."""
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), st)
    except OSError:
        return False


def _holds_flock(fd: int) -> bool | OSError:
    """Whether the open file behind ``fd`` holds an exclusive ``flock`` (its fdinfo says so).

    Returns:
        The error reading the fdinfo when /proc will not say (none mounted).
    """
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        return exc
    return any(
        line.startswith("lock:") and "FLOCK" in line.split() and "WRITE" in line.split()
        for line in lines
    )


def adopt_socket(
    handoff: Handoff,
    role: str,
    name: str,
    configured: str,
    options: str = "",
    *,
    health: bool = True,
) -> socket.socket | None:
    """The inherited listening socket for ``role``/``name``, or None if not inherited.

    ``options``: the address's ``?reuseport`` or ``?mode=OCTAL``, which must not
    change either: the inherited socket keeps the old ones. ``health``: whether
    a ``listen`` socket named ``health`` is ``health=``'s (see ``socket_label``).

    Raises:
        StartupError: the configured address or its options changed, or the fd
            is not the listening socket the hand-off claims.
    """
    entry = handoff.entry(role, name)
    if entry is None:
        return None
    label = socket_label(name, health) if role == "listen" else role
    # An old daemon that did not say its options (None): only the address is known.
    was = entry.options if entry.options is not None else options
    if (entry.configured, was) != (configured, options):
        raise StartupError(
            f"upgrade: {label} changed from {entry.configured}{was} to {configured}{options}; "
            "an upgrade keeps the listening sockets (use restart to change them)"
        )
    try:
        sock = socket.socket(fileno=entry.fd)
    except OSError:
        raise StartupError(f"upgrade: {label}: inherited fd {entry.fd} is not a socket") from None
    try:
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            raise StartupError(f"upgrade: {label}: inherited fd {entry.fd} is not listening")
        if repr(sock.getsockname()) != entry.identity:
            raise StartupError(
                f"upgrade: {label}: inherited fd {entry.fd} is bound to "
                f"{sock.getsockname()!r}, not {entry.identity}"
            )
        sock.setblocking(False)
        sock.set_inheritable(False)
    except BaseException:
        sock.detach()
        raise
    return sock


def adopt_listeners(
    handoff: Handoff, listen: Mapping[str, ListenAddress], *, health: bool = True
) -> Listeners | None:
    """The ``listen=`` sockets: inherited where the name, address and options are unchanged.

    Names the new configuration adds are bound here, and their unix socket
    files are ours from the start (removed at our exit, a failed start's
    included); inherited ones it dropped are closed by
    :meth:`Handoff.close_unclaimed`. The files of inherited sockets stay the
    old daemon's to remove until the hand-over (:func:`unix_files`). ``health``:
    whether the socket named ``health`` is ``health=``'s, as for ``open_listeners``.

    Raises:
        StartupError: an address or its options changed, a new name is on the
            address of a name the old daemon serves, or an inherited fd is not
            what it claims.
    """
    passed = _adopt_passed(handoff)
    if not listen and not passed:
        return None
    from ._sockets import open_listeners

    sockets: dict[str, socket.socket] = {}
    fresh: dict[str, Any] = {}
    owned: dict[str, tuple[int, int]] = {}
    try:
        for name, address in listen.items():
            sock = adopt_socket(
                handoff, "listen", name, str(address), address.query(), health=health
            )
            if sock is None:
                fresh[name] = address
            else:
                sockets[name] = sock
        if fresh:
            try:
                bound = open_listeners(fresh, health=health)
            except StartupError as exc:
                renamed = _renamed(handoff, fresh, exc, health)
                if renamed is None:
                    raise
                raise StartupError(renamed) from exc.__cause__
            sockets.update(bound)
            owned = bound.owned_unix_files()
    except BaseException:
        for sock in sockets.values():
            sock.detach()
        raise
    return Listeners(sockets, unix_files=owned, unclaimed=passed, activated=handoff.activated)


def _renamed(
    handoff: Handoff, fresh: Mapping[str, ListenAddress], exc: StartupError, health: bool
) -> str | None:
    """Why a new name could not be bound, when it is on the address of a name the old daemon had.

    "Address already in use" would read as a port conflict: the address is in
    use by the old daemon itself, which hands its sockets over by name.
    """
    if not isinstance(exc.__cause__, OSError) or exc.__cause__.errno != errno.EADDRINUSE:
        return None
    for name, address in fresh.items():
        for entry in handoff.entries:
            if entry.role != "listen" or entry.name in fresh:
                continue
            if entry.configured == str(address):
                return (
                    f"upgrade: {socket_label(name, health)}: {address} is the old daemon's "
                    f"{socket_label(entry.name, health)}; an upgrade keeps the listening "
                    "sockets by name (use restart to rename one)"
                )
    return None


def _adopt_passed(handoff: Handoff) -> dict[str, tuple[int, ...]]:
    """The socket-activation fds no ``listen=`` name claimed, kept at the numbers systemd gave.

    Raises:
        StartupError: an inherited fd is not the file the old daemon had there.
    """
    passed: dict[str, list[int]] = {}
    for entry in handoff.entries:
        if entry.role != "passed":
            continue
        st = os.fstat(entry.fd)
        if f"{st.st_dev}:{st.st_ino}" != entry.identity or not stat.S_ISSOCK(st.st_mode):
            raise StartupError(
                f"upgrade: inherited fd {entry.fd} is not the passed fd {entry.name!r}"
            )
        passed.setdefault(entry.name, []).append(entry.fd)
    return {name: tuple(fds) for name, fds in passed.items()}


def unix_files(
    handoff: Handoff, role: str = "listen", names: Container[str] | None = None
) -> dict[str, tuple[int, int]]:
    """The unix socket files of ``role`` the old daemon created: ours to remove at exit.

    Args:
        names: only those of these names (the sockets we serve); None: all.
    """
    files: dict[str, tuple[int, int]] = {}
    for entry in handoff.entries:
        if entry.role == role and entry.unix_file and (names is None or entry.name in names):
            dev, _, ino = entry.unix_file.partition(":")
            files[entry.configured.removeprefix("unix:")] = (int(dev), int(ino))
    return files


def adopt_control(handoff: Handoff, path: str) -> ControlSocket | None:
    """The inherited control socket at ``path``; None if the old daemon served none.

    Its file stays the old daemon's to remove until the hand-over. A control
    socket the old daemon did not have (option added, or its directory was not
    writable) waits for a restart: binding it needs what the old daemon had.

    Raises:
        StartupError: the path changed, or the fd is not that listening socket.
    """
    from ._control_socket import ControlSocket

    entry = handoff.entry("control")
    if entry is not None and entry.configured != path and entry.unix_file:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            pass
        else:
            if stat.S_ISSOCK(st.st_mode) and f"{st.st_dev}:{st.st_ino}" == entry.unix_file:
                # The socket file the old daemon made, by another name (see
                # adopt_pidfile): known by ours from now on, and ours to remove.
                entry.configured = path
    sock = adopt_socket(handoff, "control", "control", path)
    return None if sock is None else ControlSocket(path, sock, None)


def adopt(options: Options, handoff: Handoff) -> Acquired:
    """What :func:`aiodaemon._prefork._acquire.acquire` would take, from the old daemon instead.

    Log targets are opened again by path, as a reopen would; stdout and stderr
    are already our fds 1 and 2.

    Raises:
        StartupError: an inherited fd is not what it claims, or an option that
            an upgrade cannot change (pidfile, addresses) changed.
    """
    from contextlib import ExitStack

    from ._acquire import Acquired, _sockets_to_open

    acquired = Acquired(preserved=options.files_preserve, health=options.health is not None)
    with ExitStack() as stack:
        acquired.pidfile = adopt_pidfile(handoff, options.pidfile)
        if acquired.pidfile is not None:
            stack.enter_context(acquired.pidfile)
        acquired.listeners = adopt_listeners(
            handoff, _sockets_to_open(options), health=acquired.health
        )
        if acquired.listeners is not None:
            stack.enter_context(acquired.listeners)
        acquired.logs = stack.enter_context(_adopt_logs(handoff, options))
        if options.control is not None:
            acquired.control = adopt_control(handoff, options.control)
            if acquired.control is not None:
                stack.enter_context(acquired.control)
        # Everything is held: from here the stack is the caller's to close.
        acquired.stack = stack.pop_all()
    claimed = set(acquired.keep_fds())
    handoff.close_unclaimed(claimed | handoff.claimed)
    return acquired


def _adopt_logs(handoff: Handoff, options: Options) -> LogTargets:
    """The log targets: the inherited log file when the path is unchanged, else opened anew.

    Inherited because its directory may be root-only: the old daemon opened it
    before dropping privileges.

    Raises:
        StartupError: the file cannot be opened, or syslog cannot be reached.
    """
    from ._logsinks import FileSink, LogTargets, open_log_targets
    from ._syslogsink import open_syslog_sink

    entry = None if options.log_file is None else handoff.entry("log", options.log_file)
    if entry is None:
        return open_log_targets(options)
    fd = entry.fd
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or f"{st.st_dev}:{st.st_ino}" != entry.identity:
        raise StartupError(f"upgrade: inherited fd {fd} is not the log file {entry.name}")
    file = FileSink(fd, entry.name, entry.name)
    owner = options.identity.uid if options.identity is not None else None
    try:
        syslog = open_syslog_sink(options.syslog, owner) if options.syslog is not None else None
    except StartupError:
        file.close()
        raise
    return LogTargets(file, syslog)
