"""Upgrade hand-off, the successor's side: verify what the old daemon handed over, and adopt it.

The successor trusts nothing blindly: the channel's peer must be its parent
(``SO_PEERCRED`` = ``getppid()``; or, once that parent died and closed its
end, the pid the variable names), that peer must send the one-time secret of
the hand-off variable, and every fd must be what the variable claims (a
listening stream socket on the recorded address; the pidfile's inode, still at
its path, locked by this very open file). The variable is removed from the
environment (and ``/proc/PID/environ``) before the program's own code can
hand it on. The descriptors themselves are adopted by :mod:`._adopt_fds`. See
:mod:`._handoff` for the old daemon's side.

Synchronous and asyncio-free: the successor adopts before its loop exists.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn

from ..exceptions import StartupError
from ._handoff import HANDOFF_VARIABLE, VERSION, Inherited
from ._pidfile import Pidfile
from ._readiness import ReadinessPipe, release_gc
from ._sockets import Listeners, _erase_from_exec_environment

if TYPE_CHECKING:
    from ._control_socket import ControlSocket

__all__ = [
    "Handoff",
    "SuccessorChannel",
    "abandon_handoff",
    "is_successor",
    "take_handoff",
]

#: Seconds the successor waits for its parent's secret on the channel.
_SECRET_WAIT = 10.0


class Handoff:
    """What a verified predecessor handed us."""

    __slots__ = (
        "activated",
        "channel",
        "claimed",
        "detached",
        "entries",
        "gid",
        "hears",
        "owns_watchdog",
        "parent",
        "parent_pidfd",
        "real_stderr",
        "uid",
    )

    def __init__(
        self,
        parent: int,
        channel: socket.socket,
        real_stderr: int,
        detached: bool,
        uid: int,
        gid: int,
        entries: list[Inherited] | None = None,
        owns_watchdog: bool = False,
        parent_pidfd: int | None = None,
        hears: frozenset[str] = frozenset(),
        activated: bool = False,
    ) -> None:
        self.parent = parent
        #: whether the old daemon's ``listen=`` sockets came from the service manager.
        self.activated = activated
        #: the optional lines the old daemon understands (``N``): only those are sent.
        self.hears = hears
        #: a pidfd on the old daemon, None once it is gone (see :mod:`aiodaemon._run._takeover`).
        self.parent_pidfd = parent_pidfd
        self.channel = channel
        self.real_stderr = real_stderr
        self.detached = detached
        self.uid = uid
        self.gid = gid
        self.entries: list[Inherited] = [] if entries is None else entries
        self.owns_watchdog = owns_watchdog
        #: inherited fds adopted outside :func:`adopt` (control, health sockets).
        self.claimed: set[int] = set()

    def entry(self, role: str, name: str | None = None) -> Inherited | None:
        """The inherited descriptor for ``role`` (and ``name``), if any."""
        for item in self.entries:
            if item.role == role and (name is None or item.name == name):
                return item
        return None

    def close_unclaimed(self, claimed: set[int]) -> None:
        """Close every inherited fd the new configuration no longer wants."""
        for item in self.entries:
            if item.fd not in claimed:
                with contextlib.suppress(OSError):
                    os.close(item.fd)


_taken: list[Handoff | None] = []


def take_handoff(env: MutableMapping[str, str] | None = None) -> Handoff | None:
    """Remove the hand-off variables from the environment and verify what they claim.

    Returns None when this process is not a successor. Only the first call
    reads the environment; later ones return the same answer.

    Raises:
        StartupError: the variable is malformed, the parent or its secret do not
            check out, or the channel is not a socketpair with our parent.
    """
    if _taken:
        return _taken[0]
    handoff = _take(os.environ if env is None else env)
    _taken.append(handoff)
    return handoff


def abandon_handoff(code: int | None = None, message: str = "") -> None:
    """Give up a hand-off taken before the start could use it: say why, close the channel.

    The ``aiodaemon`` command takes the hand-off first thing, before it parses
    its arguments and imports the target; a usage error (a target that no
    longer imports, an option the new code refuses) ends it before
    :func:`aiodaemon._successor.succeed` could answer on the channel. The old
    daemon then gets the error itself (``code`` and ``message``, as a start
    failure), not the last line of our stderr; and the channel is closed, not
    left to the garbage collector (whose ``ResourceWarning`` under ``-X dev``
    would be that last line). A no-op when no hand-off was taken, or after the
    start closed the channel.
    """
    handoff = _taken[0] if _taken else None
    if handoff is None or handoff.channel.fileno() < 0:
        return
    if code is not None:
        line = " ".join(message.split()) or "startup failed"
        with contextlib.suppress(OSError):
            handoff.channel.sendall(f"E{int(code)} {line}\n".encode("utf-8", "backslashreplace"))
    handoff.channel.close()


def is_successor() -> bool:
    """Whether this process was started by an upgrade (the hand-off variable is or was set)."""
    return bool(_taken and _taken[0]) or HANDOFF_VARIABLE in os.environ


#: Set beside the hand-off when the old daemon fed systemd's watchdog (see _handoff).
_WATCHDOG_VARIABLE = HANDOFF_VARIABLE + "_WATCHDOG"


def _take(environ: MutableMapping[str, str]) -> Handoff | None:
    raw = environ.pop(HANDOFF_VARIABLE, None)
    watchdog = environ.pop(_WATCHDOG_VARIABLE, None) == "1"
    for variable in (HANDOFF_VARIABLE, _WATCHDOG_VARIABLE):
        os.environ.pop(variable, None)
    if raw is None:
        return None
    from ._prctl import set_dumpable

    # First of all: the exec made us dumpable again, so any process of our
    # user could ptrace us or take the inherited sockets (pidfd_getfd). The
    # successor allows it again once its options show no user=/group=.
    set_dumpable(False)
    import json

    # The secret must not stay readable in /proc/PID/environ either, nor the
    # flag: aiodaemon adds no variable there (docs/security.md).
    _erase_from_exec_environment((HANDOFF_VARIABLE, _WATCHDOG_VARIABLE))
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        # The envelope, the same in every version of the hand-off (see _handoff).
        version = data["v"]
        parent, secret = _number(data, "parent", _PID_END), str(data["secret"])
        channel_fd = _number(data, "channel")
    # RecursionError: brackets nested past the parser's depth.
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise StartupError(f"upgrade: malformed {HANDOFF_VARIABLE}: {exc}") from None
    if type(version) is not int or version != VERSION:
        _refuse_version(version, channel_fd, parent, secret)
    try:
        real_stderr = _number(data, "stderr")
        entries = [
            Inherited(
                str(e["role"]),
                str(e["name"]),
                _number(e, "fd"),
                str(e["configured"]),
                str(e["identity"]),
                str(e["unix_file"]),
                # Added later: an old daemon's entries do not say (None).
                None if e.get("options") is None else str(e["options"]),
            )
            for e in data["fds"]
        ]
        handoff_uid, handoff_gid = _number(data, "uid", _ID_END), _number(data, "gid", _ID_END)
        detached = bool(data["detached"])
        # Added later: an old daemon that does not say understands none.
        hears = data.get("hears")
        heard = frozenset(str(h) for h in hears) if isinstance(hears, list) else frozenset()
        activated = data.get("activated") is True
    except (ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"upgrade: malformed {HANDOFF_VARIABLE}: {exc}") from None
    channel = _verify_channel(channel_fd, parent, secret)
    if parent != os.getppid() and not _peer_closed(channel):
        # Reparented, yet the old daemon's end is open: someone else stands
        # between us (it runs on, and two daemons would serve). An old daemon
        # that died while we imported closed its end: we take over alone
        # (see _open_parent), as when it dies later.
        channel.close()
        raise StartupError(
            f"upgrade: {HANDOFF_VARIABLE} names pid {parent}, but our parent is {os.getppid()}"
        )
    if os.geteuid() != handoff_uid or os.getegid() != handoff_gid:
        channel.close()
        raise StartupError(
            f"upgrade: running as {os.geteuid()}:{os.getegid()}, "
            f"expected {handoff_uid}:{handoff_gid} like the old daemon"
        )
    for fd in (real_stderr, *(e.fd for e in entries)):
        try:
            os.set_inheritable(fd, False)
        except OSError:
            channel.close()
            raise StartupError(f"upgrade: inherited fd {fd} is not open") from None
    return Handoff(
        parent,
        channel,
        real_stderr,
        detached,
        handoff_uid,
        handoff_gid,
        entries,
        owns_watchdog=watchdog,
        parent_pidfd=_open_parent(parent),
        hears=heard,
        activated=activated,
    )


#: exclusive bounds of what the hand-off's numbers may be: fds and pids are C ints, ids 32 bits.
_FD_END = _PID_END = 2**31
_ID_END = 2**32


def _number(data: Any, key: str, end: int = _FD_END) -> int:
    """``data[key]``, a JSON integer from 0 up to ``end`` (exclusive), as the old daemon wrote it.

    Raises:
        ValueError: anything else (a float such as Infinity, a string, a number
            past the range): no descriptor, pid or id, and socket() would raise.
        KeyError, TypeError: no such key, or ``data`` is no object.
    """
    value = data[key]
    if type(value) is not int or not 0 <= value < end:
        raise ValueError(f"{key!r} is not an integer from 0 to {end - 1}")
    return value


def _open_parent(parent: int) -> int | None:
    """A pidfd on our parent (the old daemon), None when it is already gone.

    Opened while ``getppid()`` still names it: a parent that exits first has
    reparented us by then, so the pidfd can never name a recycled pid.
    """
    try:
        pidfd = os.pidfd_open(parent)
    except OSError:
        return None
    if os.getppid() != parent:
        os.close(pidfd)
        return None
    return pidfd


def _refuse_version(version: object, channel_fd: int, parent: int, secret: str) -> NoReturn:
    """Answer a hand-off of a version we do not take with the one we take, then fail.

    Said on the verified channel (``V1``), so the old daemon reports it as such
    (a later one may start us again with a version we take), not as a new
    process that never read the hand-off.

    Raises:
        StartupError: always, saying what to do instead.
    """
    channel = _verify_channel(channel_fd, parent, secret)
    with contextlib.suppress(OSError):
        channel.sendall(f"V{VERSION}\n".encode())
    channel.close()
    raise StartupError(
        f"upgrade: the running daemon hands over with version {version!r} of the hand-off; "
        f"this program's aiodaemon takes version {VERSION} only: use 'aiodaemon restart'"
    )


def _verify_channel(fd: int, parent: int, secret: str) -> socket.socket:
    """The channel socket, once its peer proved to be our parent holding the secret."""
    import hmac

    try:
        channel = socket.socket(fileno=fd)
    except OSError:
        raise StartupError(f"upgrade: channel fd {fd} is not a socket") from None
    try:
        channel.set_inheritable(False)
        if channel.family != socket.AF_UNIX or channel.type != socket.SOCK_STREAM:
            raise StartupError(f"upgrade: channel fd {fd} is not a unix stream socket")
        creds = channel.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        peer_pid = int.from_bytes(creds[0:4], sys.byteorder, signed=True)
        if peer_pid != parent:
            raise StartupError(f"upgrade: channel peer is pid {peer_pid}, not our parent {parent}")
        channel.settimeout(_SECRET_WAIT)
        line = _read_line(channel)
        if not line.startswith(b"S") or not hmac.compare_digest(line[1:], secret.encode()):
            raise StartupError("upgrade: the parent did not prove the hand-off secret")
        channel.settimeout(None)
    except BaseException:
        channel.close()
        raise
    return channel


def _peer_closed(channel: socket.socket) -> bool:
    """Whether every holder of the channel's other end closed it (the old daemon died)."""
    import select

    poller = select.poll()
    poller.register(channel, select.POLLRDHUP)
    return any(events & (select.POLLHUP | select.POLLRDHUP) for _, events in poller.poll(0))


def _read_line(sock: socket.socket, limit: int = 256) -> bytes:
    data = b""
    try:
        while not data.endswith(b"\n") and len(data) < limit:
            chunk = sock.recv(1)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise StartupError("upgrade: no hand-off secret from the parent in time") from None
    return data.rstrip(b"\n")


class SuccessorChannel(ReadinessPipe):
    """The successor's readiness pipe: the channel to the old daemon, kept after ``R``."""

    def __init__(self, handoff: Handoff) -> None:
        self.handoff = handoff
        self._pending = True
        # thaw: launch() froze the start-up's objects (see ReadinessPipe).
        #: what the hand-over gives us; set by the launch once acquired.
        self.pidfile: Pidfile | None = None
        self.listeners: Listeners | None = None
        self.control: ControlSocket | None = None
        self.notifier: Any = None
        #: run once the pidfile is ours, before ``W`` (the runtime starts its control server).
        self.on_takeover: list[Callable[[], Awaitable[None]]] = []
        #: called once ``R`` is sent, on the event loop (starts the hand-over wait).
        self.on_ready: Callable[[SuccessorChannel], None] | None = None
        #: the program's readiness checks, when it has any: None once they pass,
        #: else why not. ``R`` then waits until they pass (see _takeover).
        self.readiness: Callable[[], Awaitable[str | None]] | None = None
        super().__init__(handoff.channel.fileno(), thaw=True)

    @property
    def pending(self) -> bool:
        return self._pending

    def ready(self) -> bool:
        """Tell the old daemon we are ready; the hand-over itself follows (see _upgrade).

        With readiness checks, ``R`` is sent by the hand-over once they pass.
        Always in time: the old daemon enforces the upgrade's own timeout.
        """
        if not self._pending:
            return True
        self._pending = False
        if self.readiness is None:
            self._write("R\n")
        self._unfreeze()
        if self.on_ready is not None:
            self.on_ready(self)
        return True

    def fail(self, code: int, message: str) -> None:
        self._pending = False
        super().fail(code, message)

    def _write(self, text: str) -> None:
        # Unlike a launcher's pipe, the channel stays open when its peer is gone
        # (the old daemon was killed): the hand-over must still find it, see the
        # end of file and take over (see _takeover).
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.handoff.channel.sendall(text.encode("utf-8", "backslashreplace"))

    def close(self) -> None:
        self._pending = False
        if self.fd is not None:
            self.fd = None
            self.handoff.channel.close()
        self._unfreeze()

    def _unfreeze(self) -> None:
        # What launch() froze for the start-up may be collected again.
        if self._thaw:
            self._thaw = False
            release_gc()
