"""Acquire phase: the listening sockets of ``listen=``, bound or adopted from systemd.

Runs in the launching process, before the detach and before privileges are
dropped, so ports below 1024 work and "address in use" is reported on the
terminal. Never imports asyncio: the sockets cross the fork as plain fds.

Sockets are close-on-exec: the detach forks without exec, so nothing needs to be
inheritable, and a program's own subprocesses must not hold our ports open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterable, Iterator, Mapping, MutableMapping

from ..exceptions import StartupError
from ._addresses import InetAddress, ListenAddress, UnixAddress, encoded_host, inet_form_hint
from ._config import socket_label
from ._sunpath import shown_unix_name
from ._unixbind import bind_unix_listener, unlink_if_ours
from ._unixbind import unix_refusal as unix_path_refusal

__all__ = [
    "LISTEN_VARIABLES",
    "Listeners",
    "is_privileged_port",
    "open_listeners",
    "unix_refusal",
]

#: The socket-activation variables, removed from the environment once used.
LISTEN_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

#: sd_listen_fds(3): passed descriptors start right after stdio.
_FIRST_PASSED_FD = 3

#: Names systemd gives an fd nobody named: none at all, sd_listen_fds_with_names'
#: "unknown", or the socket unit's own name ("echo.socket") when the unit has no
#: FileDescriptorName=.
_UNNAMED = ("", "unknown")

#: errnos meaning "this address family or address does not exist here": the only
#: bind failures after which another resolved address is worth trying.
_TRY_NEXT = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


class Listeners(Mapping[str, socket.socket]):
    """Read-only mapping from each ``listen=`` name to its listening socket."""

    def __init__(
        self,
        sockets: Mapping[str, socket.socket] | None = None,
        *,
        unix_files: Mapping[str, tuple[int, int]] | None = None,
        unclaimed: Mapping[str, tuple[int, ...]] | None = None,
        activated: bool = False,
        left_out: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._sockets = dict(sockets or {})
        #: each socket's (st_dev, st_ino): close() closes a descriptor only while it is still ours.
        self._identities = {name: _identity(sock) for name, sock in self._sockets.items()}
        # path -> (st_dev, st_ino) of each socket file we created ourselves.
        self._unix_files = dict(unix_files or {})
        #: fds systemd passed that no ``listen=`` name claims, by their name: left
        #: open (systemd's file descriptor store passes things that are not
        #: listeners, and closing them would lose them), close-on-exec.
        self.unclaimed: Mapping[str, tuple[int, ...]] = dict(unclaimed or {})
        #: each unclaimed fd's (st_dev, st_ino) as adopted, None when it was not a
        #: socket: the program may close one and a file of its own take the
        #: number, which an upgrade must not hand on as the passed socket.
        self.passed_identities: Mapping[int, tuple[int, int] | None] = {
            fd: _socket_identity(fd) for group in self.unclaimed.values() for fd in group
        }
        #: True when the sockets came from the service manager (socket activation).
        self.activated = activated
        #: by name: the other addresses a host name resolved to, not bound (one
        #: name, one socket), which the run phase warns of.
        self.left_out: Mapping[str, tuple[str, ...]] = dict(left_out or {})

    def __getitem__(self, name: str) -> socket.socket:
        return self._sockets[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sockets)

    def __len__(self) -> int:
        return len(self._sockets)

    def __repr__(self) -> str:
        items = ", ".join(f"{name!r}: {_describe(sock)}" for name, sock in self._sockets.items())
        return f"<Listeners {{{items}}}{' activated' if self.activated else ''}>"

    def __enter__(self) -> Listeners:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def keep_fds(self) -> list[int]:
        """The descriptors the detach must keep open (sockets and unclaimed passed fds)."""
        fds = [sock.fileno() for sock in self._sockets.values() if sock.fileno() >= 0]
        fds.extend(fd for group in self.unclaimed.values() for fd in group)
        return sorted(fds)

    def owned_unix_files(self) -> dict[str, tuple[int, int]]:
        """The Unix socket files we created: path -> (st_dev, st_ino)."""
        return dict(self._unix_files)

    def own_unix_files(self, files: Mapping[str, tuple[int, int]]) -> None:
        """Take over removing ``files`` at exit (an upgrade's successor, after the hand-over)."""
        self._unix_files.update(files)

    def enter_chroot(self, root: str) -> None:
        """Remove the socket files at exit by their paths inside ``root``; call before the chroot.

        A file outside the jail cannot be reached from it and is left.
        """
        from ._jailpath import seen_from

        inside = {}
        for path, identity in self._unix_files.items():
            seen = seen_from(root, path)
            if seen is not None:
                inside[seen] = identity
        self._unix_files = inside

    def disown_unix_files(self, files: Iterable[str] | None = None) -> None:
        """Leave the socket files at exit: an upgrade's successor serves on them now.

        Args:
            files: only these paths (a successor giving back what it took
                over); None: every one.
        """
        if files is None:
            self._unix_files.clear()
        for path in files or ():
            self._unix_files.pop(path, None)

    def close(self, *, unlink: bool = True) -> None:
        """Close every socket and remove the Unix socket files we bound.

        A file is removed only while it is still the inode we created: a new
        instance may already have replaced it during a restart.

        Args:
            unlink: False in a process that must leave the files to another one.
        """
        self.leave_to_daemon()
        if unlink:
            for path, identity in self._unix_files.items():
                unlink_if_ours(path, identity)
        self._unix_files.clear()

    def leave_to_daemon(self) -> None:
        """Close the sockets and the unclaimed passed fds; :meth:`close` still removes the files.

        In the launcher, just forked: the daemon holds its own copies.
        """
        for name, sock in self._sockets.items():
            if sock.fileno() < 0:
                continue
            if _identity(sock) != self._identities[name]:
                # The program closed the descriptor itself (a server given its
                # number, such as hypercorn's fd://, owns it): closing it again
                # failed with EBADF, or closed a file opened since on that number.
                sock.detach()
                continue
            sock.close()
        for group in self.unclaimed.values():
            for fd in group:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.unclaimed = {}


def _socket_identity(fd: int) -> tuple[int, int] | None:
    """``fd``'s (st_dev, st_ino) if it is a socket; None otherwise or when closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


def _identity(sock: socket.socket) -> tuple[int, int] | None:
    """The (st_dev, st_ino) of the file ``sock``'s descriptor names, None when it names none."""
    try:
        st = os.fstat(sock.fileno())
    except OSError:
        return None
    return st.st_dev, st.st_ino


def open_listeners(
    listen: Mapping[str, ListenAddress],
    *,
    env: MutableMapping[str, str] | None = None,
    owner: tuple[int | None, int | None] = (None, None),
    health: bool = True,
) -> Listeners:
    """Bind every ``listen=`` address, or adopt the sockets systemd passed for them.

    With ``LISTEN_FDS`` and ``LISTEN_PID`` equal to our pid (socket activation),
    each name is matched to the passed fd of the same name in ``LISTEN_FDNAMES``
    (a single unnamed fd matches a single entry) and nothing is bound; the
    ``LISTEN_*`` variables are then removed from ``env`` and ``os.environ``.
    With an empty ``listen=`` the passed fds and variables are left alone for
    the program. Call :func:`aiodaemon._prefork._detach.is_supervised` before this.

    Args:
        listen: name -> address, as validated by the configure phase.
        env: the environment to read and clean; ``os.environ`` by default.
        owner: (uid, gid) the Unix socket files are created for (the user the
            daemon drops to): group members may then connect to a 0660 socket,
            and the daemon may remove its own files at exit.
        health: whether the socket named ``health`` is ``health=``'s (so named
            in errors) rather than a ``listen=`` entry of that name.

    Raises:
        StartupError: naming the entry, when an address cannot be bound or the
            passed sockets do not match; nothing acquired is left open.
    """
    environ: MutableMapping[str, str] = os.environ if env is None else env
    if not listen:
        return Listeners()
    if _activation_is_ours(environ):
        listeners = _adopt(listen, environ, health)
        _forget_activation(environ)
        return listeners
    sockets: dict[str, socket.socket] = {}
    unix_files: dict[str, tuple[int, int]] = {}
    left_out: dict[str, tuple[str, ...]] = {}
    try:
        for name, address in listen.items():
            try:
                if isinstance(address, UnixAddress):
                    sock, identity = bind_unix_listener(
                        address.path, mode=address.mode, owner=owner
                    )
                    unix_files[address.path] = identity
                else:
                    sock, others = _bind_inet(address)
                    if others:
                        left_out[name] = others
            except socket.gaierror as exc:
                raise StartupError(_unresolved(socket_label(name, health), address, exc)) from exc
            except OSError as exc:
                raise _bind_error(name, address, exc, health) from exc
            sockets[name] = sock
    except BaseException:
        Listeners(sockets, unix_files=unix_files).close()
        raise
    return Listeners(sockets, unix_files=unix_files, left_out=left_out)


def unix_refusal(
    name: str, address: UnixAddress, *, owner: int | None = None, health: bool = True
) -> StartupError | None:
    """The start's error for ``address`` if :func:`open_listeners` would refuse it; else None.

    What is at the path is judged as the bind judges it (see
    :func:`._unixbind.unix_refusal`), and nothing is created or removed.

    Returns:
        The error, its ``__cause__`` the ``OSError`` the bind would meet.

    Args:
        name: the ``listen=`` name, for the message.
        address: the unix address.
        owner: the uid the daemon drops to (``user=``).
        health: as for :func:`open_listeners`.
    """
    refused = unix_path_refusal(address.path, owner=owner)
    if refused is None:
        return None
    error = _bind_error(name, address, refused, health)
    error.__cause__ = refused  # what was found there, as a raise from it would keep
    return error


def _bind_error(name: str, address: ListenAddress, exc: OSError, health: bool) -> StartupError:
    """The start's one line for ``address``, which could not be bound because of ``exc``."""
    reason = exc.strerror or str(exc)
    # Not a unix socket's EACCES: another user's socket in the way
    # (see _unixbind) is refused to root as well.
    privileged = (
        exc.errno == errno.EACCES
        and isinstance(address, InetAddress)
        and is_privileged_port(address)
    )
    if privileged and isinstance(address, InetAddress):
        reason += (
            f" (port {address.port} is privileged: start as root and drop"
            " with user=/--user, use a port from 1024 up, systemd socket"
            " activation, or grant CAP_NET_BIND_SERVICE)"
        )
    return StartupError(
        f"{socket_label(name, health)}: cannot bind {_show(address)}: {reason}",
        needs_privilege=privileged,
    )


def is_privileged_port(address: InetAddress) -> bool:
    """Whether binding ``address`` needs root or CAP_NET_BIND_SERVICE."""
    if address.port == 0:
        return False
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as f:
            first = int(f.read())
    except (OSError, ValueError):
        first = 1024
    return address.port < first


def _unresolved(label: str, address: ListenAddress, exc: socket.gaierror) -> str:
    """Why ``address`` cannot be bound when its host does not resolve, and the form to write.

    A name the resolver does not know is the machine's DNS as often as a typo
    (``http:8080`` for ``:8080``): exit 1 as other acquire failures, but the
    line says which part failed and what the address should look like.
    """
    text = f"{label}: cannot resolve {_show(address)}: {exc.strerror}"
    if isinstance(address, InetAddress) and address.host:
        text = (
            f"{label}: cannot resolve {_show(address)}: host {address.host!r} did not"
            f" resolve ({exc.strerror}); {inet_form_hint(address.port)}"
        )
    return text


def _show(address: ListenAddress) -> str:
    if isinstance(address, InetAddress) and not address.host:
        return f"*:{address.port}"
    return str(address)


def _shown_ip(family: socket.AddressFamily, ip: object, port: int) -> str:
    return f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"


def _describe(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "closed"
    if sock.family == socket.AF_UNIX:
        return repr(f"unix:{shown_unix_name(name)}")
    return repr(name)


def _bind_inet(address: InetAddress) -> tuple[socket.socket, tuple[str, ...]]:
    """A listening TCP socket on the first usable address ``address`` resolves to.

    Returns:
        The socket, and the other addresses a host name resolved to, unbound
        (``localhost`` on a host whose /etc/hosts lists ``::1`` first: only
        ``[::1]``, so IPv4 clients are refused); () for an IP literal or "".
    """
    if not address.host:
        # One socket for "all interfaces": dual-stack [::] reaches IPv4 clients
        # too; hosts without IPv6 fall back to 0.0.0.0.
        candidates: list[tuple[socket.AddressFamily, tuple[object, ...], bool]] = [
            (socket.AF_INET6, ("::", address.port, 0, 0), False),
            (socket.AF_INET, ("0.0.0.0", address.port), False),
        ]
    else:
        family = socket.AF_INET6 if address.ipv6 else socket.AF_UNSPEC
        infos = socket.getaddrinfo(
            encoded_host(address.host),
            address.port,
            family,
            socket.SOCK_STREAM,
            0,
            socket.AI_PASSIVE | socket.AI_NUMERICSERV,
        )
        candidates = [(info[0], info[4], True) for info in infos]
    error: OSError | None = None
    for index, (family, sockaddr, v6only) in enumerate(candidates):
        try:
            sock = _listen_on(family, sockaddr, v6only, address.reuse_port)
        except OSError as exc:
            # "address in use" on [::1] must not quietly become 127.0.0.1.
            if exc.errno not in _TRY_NEXT:
                raise
            error = exc
            continue
        if not address.host:
            return sock, ()
        # Only other IPs: getaddrinfo may list one address once per protocol.
        bound = sockaddr[0]
        others = dict.fromkeys(
            _shown_ip(family, other[0], address.port)
            for family, other, _ in candidates[index + 1 :]
            if other[0] != bound
        )
        return sock, tuple(others)
    assert error is not None  # getaddrinfo never returns an empty list
    raise error


def _listen_on(
    family: socket.AddressFamily, sockaddr: tuple[object, ...], v6only: bool, reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted daemon must rebind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # Only when asked: it lets another socket of the same uid share the
            # port, which is what several instances want and a lone daemon must
            # refuse. (The kernel admits only sockets created by our uid: root's,
            # for a daemon that binds before dropping to its user.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # Explicit either way: the net.ipv6.bindv6only sysctl differs between hosts.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _activation_is_ours(env: Mapping[str, str]) -> bool:
    """Whether the environment passes sockets to this very process (sd_listen_fds)."""
    return "LISTEN_FDS" in env and env.get("LISTEN_PID", "").strip() == str(os.getpid())


def _adopt(listen: Mapping[str, ListenAddress], env: Mapping[str, str], health: bool) -> Listeners:
    """Match ``listen=`` names to the fds systemd passed, and take them over."""
    count_text = env["LISTEN_FDS"].strip()
    # isascii: "²" is str.isdigit() but int() refuses it. The bound: passed fds
    # are open in this process, so below its descriptor limit; a larger count
    # is garbage, and one name per fd would have filled the memory.
    if not (count_text.isascii() and count_text.isdigit()) or len(count_text) > 10:
        shown = env["LISTEN_FDS"]
        shown = repr(shown) if len(shown) <= 32 else f"{shown[:32]!r}... ({len(shown)} characters)"
        raise StartupError(f"listen: bad LISTEN_FDS={shown} from the service manager")
    count = int(count_text)
    import resource  # loaded already (_inherited)

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit != resource.RLIM_INFINITY and count > limit - _FIRST_PASSED_FD:
        raise StartupError(
            f"listen: bad LISTEN_FDS={count} from the service manager: more descriptors"
            f" than this process may have open ({limit}, ulimit -Hn)"
        )
    names = env["LISTEN_FDNAMES"].split(":") if env.get("LISTEN_FDNAMES") else [""] * count
    if len(names) != count:
        raise StartupError(
            f"listen: LISTEN_FDNAMES names {len(names)} sockets but LISTEN_FDS={count}"
        )
    by_name: dict[str, list[int]] = {}
    for offset, fd_name in enumerate(names):
        by_name.setdefault(fd_name, []).append(_FIRST_PASSED_FD + offset)
    passed = ":".join(names) if any(names) else f"{count} unnamed" if count else "none"
    wanted = list(listen)
    if (
        len(wanted) == 1
        and count == 1
        and wanted[0] not in by_name
        and (names[0] in _UNNAMED or names[0].endswith(".socket"))
    ):
        by_name = {wanted[0]: by_name[names[0]]}
    chosen: dict[str, int] = {}
    for name in wanted:
        fds = by_name.get(name, [])
        label = socket_label(name, health)
        if not fds:
            raise StartupError(
                f"{label}: the service manager passed no socket named {name!r} "
                f"(passed: {passed}); set FileDescriptorName={name} in the .socket unit"
            )
        if len(fds) > 1:
            raise StartupError(
                f"{label}: the service manager passed {len(fds)} sockets named "
                f"{name!r}; one socket per name is supported"
            )
        chosen[name] = fds[0]
    sockets: dict[str, socket.socket] = {}
    try:
        for name, fd in chosen.items():
            sockets[name] = _adopt_fd(socket_label(name, health), fd)
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    unclaimed = {fd_name: tuple(fds) for fd_name, fds in by_name.items() if fd_name not in chosen}
    for group in unclaimed.values():
        for fd in group:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
    return Listeners(sockets, unclaimed=unclaimed, activated=True)


def _adopt_fd(label: str, fd: int) -> socket.socket:
    """Wrap passed ``fd`` after checking it is a listening stream socket."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise StartupError(
            f"{label}: passed fd {fd} is not a usable socket: {exc.strerror or exc}"
        ) from exc
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_STREAM:
            raise StartupError(
                f"{label}: passed fd {fd} is not a stream socket "
                "(use ListenStream= in the .socket unit)"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise StartupError(f"{label}: passed fd {fd} is not listening (Accept=no is required)")
        sock.setblocking(False)
        sock.set_inheritable(False)
    except BaseException:
        # Give the fd back untouched rather than closing what we were refused.
        sock.detach()
        raise
    return sock


def _forget_activation(env: MutableMapping[str, str]) -> None:
    """Remove ``LISTEN_*`` so neither our children nor a later look see stale fds."""
    for variable in LISTEN_VARIABLES:
        env.pop(variable, None)
        os.environ.pop(variable, None)
    _erase_from_exec_environment(LISTEN_VARIABLES)


def _erase_from_exec_environment(variables: tuple[str, ...]) -> None:
    """Blank ``NAME=value`` strings in the environment block the kernel shows.

    ``/proc/PID/environ`` (what ``ps e`` and monitoring read) is the memory
    execve() filled, not libc's current environment: unsetenv() only drops the
    pointers, so the strings would stay visible. The block is our own writable
    memory and nothing points into it once the variables are unset, so its
    entries are zeroed in place. Cosmetic, hence best effort.
    """
    # ctypes only here, on the rare socket-activation path: it is not cheap to import.
    import ctypes

    prefixes = tuple(f"{variable}=".encode() for variable in variables)
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # proc(5): env_start and env_end are fields 50 and 51; index 0 is field 3.
        start, end = int(fields[47]), int(fields[48])
        if not 0 < start < end:
            return
        block = ctypes.string_at(start, end - start)
    except (OSError, IndexError, ValueError):
        return
    offset = 0
    for entry in block.split(b"\0"):
        if entry.startswith(prefixes):
            ctypes.memset(start + offset, 0, len(entry))
        offset += len(entry) + 1
