"""The CLI's side of the control socket: one request, one verified answer.

Nothing at the control path is trusted on sight: an unprivileged user may
have planted a listener there. The answer counts only when the socket file
belongs to root or the daemon's user and the peer that answers (its
``SO_PEERCRED``) is the very process holding the pidfile's lock. Synchronous,
no asyncio: ``aiodaemon status`` must cost little more than starting Python.
"""

from __future__ import annotations

# The C module, not socket.py: that one imports selectors and builds enums of
# every address family and socket type, ~2 ms of an ``aiodaemon status`` that
# should cost little more than starting Python (benchmarks/control.py).
import _socket
import errno
import os
import stat
import struct
import time

from .._prefork._control_protocol import (
    MAX_ANSWER,
    VERSION,
    ProtocolError,
    VersionError,
    decode,
    encode,
)
from .._prefork._filekind import describe_mode
from .._prefork._messages import printable, seconds_shown, shown
from .._prefork._procfs import descriptors, uids
from .._prefork._sunpath import unix_address

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    #: Paths stay plain strings here: importing pathlib costs a control command ~2 ms.
    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = [
    "BUSY_PATIENCE",
    "NOTHING_THERE",
    "WATCH_EVERY",
    "ControlAbsent",
    "ControlBacklogFull",
    "ControlBusy",
    "ControlDenied",
    "ControlError",
    "ControlMismatch",
    "ControlNoAnswer",
    "ControlRefused",
    "ControlTimeout",
    "ControlUntrusted",
    "ControlVersionMismatch",
    "ask",
    "ask_patiently",
    "exchange",
    "is_transient",
    "not_a_socket",
    "out_of_descriptors",
    "request_timeout",
]

_PEERCRED = struct.Struct("3i")

#: What ``lstat`` of a path nothing can be at fails with: no such path, a file
#: for a directory, a name too long, a symlink loop. As absent as a missing file.
NOTHING_THERE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP})


class ControlError(Exception):
    """No trustworthy answer came from the control socket; the message says why."""


class ControlAbsent(ControlError):
    """Nothing at the control path: the daemon runs without a control socket."""


class ControlRefused(ControlError):
    """A socket file nobody accepts on: a daemon not serving yet, or a leftover."""


class ControlDenied(ControlError):
    """We may not connect: the socket is the daemon user's and we are someone else."""


class ControlUntrusted(ControlError):
    """What is at the control path is not the daemon's socket; nothing was sent to it.

    Another user's file, something that is not a socket, or a socket served by
    another process than the pidfile's holder: the daemon has no control socket
    there, so the commands fall back to the pidfile and signals.
    """


class ControlMismatch(ControlUntrusted):
    """The peer is not the pidfile's holder: an impostor, or an upgrade handing over.

    Attributes:
        peer: the pid serving the socket.
    """

    def __init__(self, message: str, peer: int) -> None:
        super().__init__(message)
        self.peer = peer


class ControlVersionMismatch(ControlError):
    """The daemon answers in another version of the control protocol: another aiodaemon's.

    It refused the request (or answered in words this side cannot read): nothing
    was done. The message names both versions and the daemon's own words.

    Attributes:
        version: the version the daemon speaks.
    """

    def __init__(self, name: str, version: int, error: str | None) -> None:
        said = "" if error is None else f" (its answer: {printable(error[:_SAID_MOST])})"
        super().__init__(
            f"{name} speaks control protocol version {shown(version)}, this aiodaemon "
            f"speaks {VERSION}{said}"
        )
        self.version = version


#: The most of a daemon's refusal a message repeats.
_SAID_MOST = 200


class ControlTimeout(ControlError):
    """The daemon did not answer in time."""


class ControlNoAnswer(ControlError):
    """The daemon's socket took the connection and dropped it unanswered.

    What a daemon out of descriptors does (libuv accepts and closes at
    EMFILE), or one ending right then: it may well run on.
    ``out_of_descriptors``: /proc showed every descriptor it may have open.
    """

    def __init__(self, message: str, *, out_of_descriptors: bool = False) -> None:
        super().__init__(message)
        self.out_of_descriptors = out_of_descriptors


class ControlBacklogFull(ControlError):
    """The socket's backlog is full: nobody accepts right now (the daemon's loop is held up).

    A "not now" like the daemon's own "busy" refusals: :func:`ask_patiently`
    asks again until its deadline.
    """


class ControlBusy(ControlError):
    """The daemon kept answering "not now" (see :func:`is_transient`) until the deadline.

    The message is the daemon's last refusal ("busy: 32 control connections
    open", "an upgrade to successor pid N is in progress"); nothing was done.
    """


#: First pause between two tries of a transient refusal; it doubles up to the longest.
_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 0.5
#: Seconds between two calls of an exchange's ``watch`` while it awaits the answer.
WATCH_EVERY = 0.2
#: Seconds a status request asks again a control socket that answers "busy"
#: (within its timeout) before it reports without it: a probe must not hang on it.
BUSY_PATIENCE = 2.0


class KeptConnection:
    """A connection left open after its answer, and what came after the answer's line."""

    def __init__(self) -> None:
        self.sock: _socket.socket | None = None
        self.rest = b""
        #: the pid a request went to in full (before its answer): it acts on it
        #: whether or not we stay for the answer.
        self.sent_to: int | None = None

    def read_to_end(self, timeout: float, limit: int = 65536) -> bytes:
        """What follows the answer, until the peer's end (or ``timeout``, or ``limit`` bytes)."""
        if self.sock is None:
            return self.rest
        return read_to_end(self.sock, timeout, limit, self.rest)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def read_to_end(
    sock: _socket.socket, timeout: float, limit: int = 65536, data: bytes = b""
) -> bytes:
    """``data`` and what ``sock`` sends until its end, ``timeout`` s or ``limit`` bytes."""
    deadline = time.monotonic() + timeout
    try:
        while len(data) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            chunk = sock.recv(limit - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:  # a timeout, a reset: what came so far is all there is
        pass
    return data


def ask(
    path: StrPath,
    request: dict[str, Any],
    *,
    holder: int,
    timeout: float,
    said: float | None = None,
    keep: KeptConnection | None = None,
    watch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Send ``request`` to the control socket at ``path`` and return the daemon's answer.

    Args:
        path: the control socket.
        request: one protocol message (``v`` and ``cmd``).
        holder: the pid verified to hold the pidfile's lock; only it may answer.
        timeout: seconds for the whole exchange.
        said: the seconds a timeout names (see :func:`exchange`).
        keep: where to leave the connection open once answered (see :func:`exchange`).
        watch: called while the answer is awaited (see :func:`exchange`).

    Raises:
        ControlError: (or a subclass) with a one-line reason.
    """
    _check_file(path, holder)

    def check_peer(pid: int, _uid: int) -> None:
        if pid != holder:
            raise ControlMismatch(
                f"control socket {path} is served by pid {pid}, not by the daemon holding "
                f"the pidfile (pid {holder}); not trusted",
                pid,
            )

    name = f"pid {holder}"
    return exchange(
        path,
        request,
        timeout=timeout,
        check_peer=check_peer,
        name=name,
        said=said,
        keep=keep,
        watch=watch,
    )


def exchange(
    path: StrPath,
    request: dict[str, Any],
    *,
    timeout: float,
    check_peer: Callable[[int, int], None],
    name: str,
    said: float | None = None,
    keep: KeptConnection | None = None,
    watch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Connect to ``path``, let ``check_peer(pid, uid)`` judge the server, then ask ``request``.

    The caller has checked the socket file; ``check_peer`` raises (a
    :class:`ControlUntrusted`) before a byte is sent to a server it refuses.
    ``name`` says who is expected to answer, for the messages; ``said``, the
    seconds they name when the wait runs out (the user's ``--timeout``, of
    which ``timeout`` may be what is left), else ``timeout``. ``keep``: a
    connection answered is left open there, with what came after its answer's
    line, for a request whose server writes more later (stop's ``watch``).
    ``watch``: called every ``WATCH_EVERY`` s while the answer is awaited; what
    it raises (a daemon seen suspended meanwhile, say) ends the wait there.

    Raises:
        ControlError: (or a subclass) with a one-line reason.
    """
    deadline = time.monotonic() + timeout
    # Callers that do not say pass what is left of the user's --timeout
    # (0.999997 of its 1 s): to the hundredth, that is the user's figure, unless
    # that is 0 (then the figure itself: "within 0 s" was no wait at all).
    waited = seconds_shown(said if said is not None else round(timeout, 2) or timeout)
    try:
        address, dirfd = unix_address(path)
    except OSError as exc:
        # A long path's directory, removed or closed to us since the socket's lstat.
        if exc.errno in NOTHING_THERE:
            raise ControlAbsent(f"no control socket at {path}") from None
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            _connect(sock, address, path, waited)
            peer = _peer(sock)
            check_peer(*peer)
            try:
                # A peer that answers before reading may close first: its answer
                # (or its silence) is still what counts, not our broken pipe.
                try:
                    sock.sendall(encode(request))
                    if keep is not None:
                        keep.sent_to = peer[0]
                    sock.shutdown(_socket.SHUT_WR)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                data = _read_answer(sock, deadline, watch)
                if keep is not None and b"\n" in data:
                    data, _, keep.rest = data.partition(b"\n")
                    data += b"\n"
                    if keep.sock is not None:
                        keep.sock.close()  # a "busy" answer's, asked again
                    keep.sock = sock
            except TimeoutError:
                raise ControlTimeout(f"no answer from {name} within {waited} s") from None
            except ConnectionResetError as exc:
                raise ControlNoAnswer(
                    f"control socket {path}: connection lost: {exc.strerror or exc}"
                ) from None
            except OSError as exc:
                raise ControlError(
                    f"control socket {path}: connection lost: {exc.strerror or exc}"
                ) from None
        finally:
            if keep is None or keep.sock is not sock:
                sock.close()
    finally:
        if dirfd is not None:
            os.close(dirfd)
    if not data:
        # The usual cause in a daemon that lives: no descriptor left to take the
        # connection with (uvloop accepts and closes it, and logs nothing).
        why = out_of_descriptors(peer[0])
        raise ControlNoAnswer(
            f"{name} closed the control connection without an answer"
            + ("" if why is None else f" ({why})"),
            out_of_descriptors=why is not None,
        )
    if not data.endswith(b"\n"):
        raise ControlError(f"truncated answer on control socket {path}")
    try:
        return decode(data)
    except VersionError as exc:
        # Another aiodaemon's daemon (an upgraded package, a daemon started
        # before it): refused, and said so, not "unreadable".
        raise ControlVersionMismatch(name, exc.version, exc.error) from None
    except ProtocolError as exc:
        raise ControlError(f"unreadable answer on control socket {path}: {exc}") from None


def is_transient(answer: dict[str, Any]) -> bool:
    """Whether ``answer`` refuses only for now, so that asking again later may succeed.

    The daemon marks such refusals ``"transient": true`` (every control slot
    taken; a reload during an upgrade); a daemon older than that mark says
    ``busy: ...``.
    """
    if answer.get("ok") is not False:
        return False
    return answer.get("transient") is True or str(answer.get("error", "")).startswith("busy:")


def ask_patiently(
    ask_once: Callable[[], dict[str, Any]],
    *,
    until: float,
    wait: Callable[[float], object] = time.sleep,
    on_refusal: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``ask_once()`` again, with a short growing pause, while the daemon answers "not now".

    The one retry every command shares (``status``, ``reload``, ``upgrade``,
    ``stop``): a refusal marked transient (:func:`is_transient`) is not the
    daemon's verdict, only a moment when it could not take the request; nor
    is a connection its full backlog refused (:class:`ControlBacklogFull`).

    Args:
        ask_once: one exchange; it may look again for whom to ask (a new
            pidfile holder after an upgrade). What else it raises goes through.
        until: ``time.monotonic()`` after which no new try begins.
        wait: sleeps the pause (``stop`` waits on the daemon's exit instead).
        on_refusal: called once, with the daemon's error, at the first
            transient refusal (a command that may wait long says why).

    Returns:
        The first answer that is not a transient refusal.

    Raises:
        ControlBusy: every try until ``until`` was refused for now.
    """
    pause = _FIRST_PAUSE
    told = False
    while True:
        try:
            answer = ask_once()
        except ControlBacklogFull as exc:
            # Refused before a word, not an answer: "not now" all the same.
            answer = {"ok": False, "transient": True, "error": str(exc)}
        if not is_transient(answer):
            return answer
        error = " ".join(str(answer.get("error") or "busy").split())
        left = until - time.monotonic()
        if left <= 0:
            raise ControlBusy(error)
        if on_refusal is not None and not told:
            told = True
            on_refusal(error)
        # Spread out: clients refused together must not all come back together.
        spread = 0.5 + (time.monotonic_ns() // 1000 % 1000) / 1000
        wait(min(left, pause * spread))
        pause = min(2 * pause, _LONGEST_PAUSE)
        if time.monotonic() >= until:
            # A pause that ran to the end leaves no time for a try: one begun
            # then failed as "no answer within 0.001 s", hiding the refusal.
            raise ControlBusy(error)


def request_timeout(deadline: float, timeout: float) -> float:
    """The wait to ask of the daemon: all of ``timeout`` at the first try, later what is left.

    What is left until ``deadline`` (at least 0.1 s, in tenths: it is shown in
    the daemon's messages) once a retry (:func:`ask_patiently`) used some of it.
    """
    left = deadline - time.monotonic()
    return timeout if left >= timeout - 0.05 else max(0.1, round(left, 1))


def _check_file(path: StrPath, holder: int) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno in NOTHING_THERE:
            raise ControlAbsent(f"no control socket at {path}") from None
        raise ControlError(f"control socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise not_a_socket(path, st.st_mode)
    ids = uids(holder)
    owner = None if ids is None else ids[1]  # the effective uid
    if st.st_uid != 0 and owner is not None and st.st_uid != owner:
        raise ControlUntrusted(
            f"control socket {path} belongs to uid {st.st_uid}, not to the daemon's user "
            f"(uid {owner}); not trusted"
        )


def not_a_socket(path: StrPath, mode: int) -> ControlUntrusted:
    """The refusal of a file at the control path that is no socket, naming what it is."""
    kind = describe_mode(mode)
    return ControlUntrusted(f"{path} is not a control socket ({kind}); not trusted")


def _connect(sock: _socket.socket, address: str, path: StrPath, waited: str) -> None:
    try:
        sock.connect(address)
    except ConnectionRefusedError:
        raise ControlRefused(f"nobody accepts on control socket {path}") from None
    except FileNotFoundError:
        raise ControlAbsent(f"no control socket at {path}") from None
    except PermissionError:
        raise ControlDenied(
            f"not allowed to use control socket {path}: run as the daemon's user or as root"
        ) from None
    except TimeoutError:
        raise ControlTimeout(f"control socket {path} accepted nothing within {waited} s") from None
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            # Every place in the listen backlog taken: the loop accepts nothing
            # now (sync code holding it), which may end within our time.
            raise ControlBacklogFull("busy: the control socket's backlog is full") from None
        if exc.errno == errno.EPROTOTYPE:
            # A socket of another type (a syslog-like datagram socket): never
            # the daemon's, which listens on a stream socket. Nothing was sent.
            kind = _socket_kind(address)
            why = f"{path} is not a control socket ({kind}); not trusted"
            raise ControlUntrusted(why) from None
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None


def _socket_kind(address: str) -> str:
    """What a unix socket that refused a stream connection is, in words.

    A "connect" of the right type names the peer (a datagram socket) or
    queues a connection closed unread (a sequenced-packet one): nothing is
    sent. Non-blocking: a full backlog must not hold the command.
    """
    for kind, name in (
        (_socket.SOCK_DGRAM, "a datagram socket"),
        (_socket.SOCK_SEQPACKET, "a sequenced-packet socket"),
    ):
        probe = _socket.socket(_socket.AF_UNIX, kind)
        try:
            probe.setblocking(False)
            probe.connect(address)
        except OSError as exc:
            # Refused or full, it is of that type all the same; only the type says no.
            if exc.errno == errno.EPROTOTYPE:
                continue
        finally:
            probe.close()
        return name
    return "not a stream socket"


def out_of_descriptors(pid: int) -> str | None:
    """Says so when ``pid`` has (nearly) every descriptor its ``RLIMIT_NOFILE`` allows open."""
    used = descriptors(pid)
    # One short counts: out of descriptors, libuv keeps one in reserve, which it
    # closes to accept and drop a connection, then opens again. Our look may
    # come between the drop we saw and that open.
    if used is None or used[0] < used[1] - 1:
        return None
    return f"it is out of file descriptors: {used[0]} open, its RLIMIT_NOFILE is {used[1]}"


def _peer(sock: _socket.socket) -> tuple[int, int]:
    """The pid and uid of the process serving ``sock`` (``SO_PEERCRED``)."""
    pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def _read_answer(
    sock: _socket.socket, deadline: float, watch: Callable[[], None] | None = None
) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left if watch is None else min(left, WATCH_EVERY))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if watch is None:
                raise
            watch()
            continue  # the deadline, if it passed, is seen above
        except ConnectionResetError:
            # The peer closed without reading our request: the end of its answer.
            break
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_ANSWER:
            raise ControlError(f"answer larger than {MAX_ANSWER} bytes; not read")
    return data
