"""The service manager's side: sd_notify and the watchdog (supervision detection is in _detach).

The notify protocol is small enough to speak directly (sd_notify(3)): one
datagram per message, ``NAME=value`` assignments separated by newlines, sent
to the AF_UNIX socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace). No libsystemd, so containers without it behave the same.
The socket itself, which never makes the daemon's loop wait, is
:mod:`._notify_socket`'s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping

from .._prefork._detach import is_supervised
from .._prefork._handoff import give_back_withheld, withhold_from_children
from .._prefork._messages import printable
from ..exceptions import StartupError
from ._notify_backlog import FAILED, MAINPID, OTHER, READY, RELOADING, STATUS, STOPPING, WATCHDOG
from ._notify_socket import NotifySocket

__all__ = [
    "WATCHDOG_FLOOR",
    "Notifier",
    "SuccessorNotifier",
    "is_supervised",
    "notify",
    "notify_address",
    "run_watchdog",
    "set_default_notifier",
]

#: sun_path holds 108 bytes including the terminating NUL.
_MAX_PATH = 107

#: Bytes of a STATUS= text. systemd ignores a whole notify message of PIPE_BUF
#: (4096) bytes or more, the READY=1 ending a reload with it, and a status over
#: 3 KiB; this leaves room for the other assignments of a message.
_STATUS_MAX = 2048

#: Seconds: the shortest interval between ``WATCHDOG=1`` pings, whatever
#: ``WATCHDOG_USEC`` asks (a timeout under twice this cannot be kept anyway).
WATCHDOG_FLOOR = 0.01


class Notifier:
    """A connected sd_notify socket; every method sends one datagram.

    Sends never raise: a vanished manager socket only makes ``send``
    return False (the manager restarting must not take the daemon down).
    On the daemon's loop (see :meth:`attach`) no send waits: a message the
    manager's full queue refuses is held and sent as soon as it takes it.
    """

    def __init__(self, address: str, *, watchdog_interval: float | None = None) -> None:
        """Open a datagram socket and connect it to ``address``.

        Args:
            address: a filesystem path, or ``"\\0name"`` for an abstract socket.
            watchdog_interval: seconds between ``WATCHDOG=1`` pings, None for no watchdog.
        """
        self.address = address
        #: seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None.
        self.watchdog_interval = watchdog_interval
        self._socket = NotifySocket(address)
        #: whether the program set its own STATUS= since the last lifecycle message.
        self.program_status_set = False

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier ``NOTIFY_SOCKET`` asks for, or None when it is unset.

        Raises:
            StartupError: ``NOTIFY_SOCKET`` is not a path or an ``@abstract`` name,
                so READY=1 could never reach the manager.
        """
        environ = os.environ if env is None else env
        address = notify_address(environ)
        if address is None:
            return None
        return cls(address, watchdog_interval=_watchdog_interval(environ))

    def send(self, *assignments: str) -> bool:
        """Send ``assignments`` (``"NAME=value"``) as one datagram.

        Returns False if it did not go out; on the daemon's loop, True also
        when it is held until the manager's full queue takes it.
        """
        if assignments == ("WATCHDOG=1",):
            kind = WATCHDOG
        elif assignments and all(a.startswith("STATUS=") for a in assignments):
            kind = STATUS
        else:
            kind = OTHER
        return self._say(kind, *assignments)

    def _say(self, kind: str, *assignments: str) -> bool:
        """Send one datagram; ``kind``: what it is to the held messages (see _notify_backlog)."""
        # A program's own STATUS= may hold a file name's undecodable byte (a
        # surrogate): escaped, not a UnicodeEncodeError in place of the message.
        # So is a NUL, for which systemd would ignore the whole message.
        text = "\n".join(assignments).replace("\0", "\\x00")
        data = text.encode("utf-8", "backslashreplace")
        return self._socket.send(kind, assignments, data)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on ``loop``: from now on no send waits for the manager (see _notify_socket)."""
        self._socket.attach(loop)

    def detach(self, budget_end: float | None) -> None:
        """The loop ends: later sends, and :meth:`flush`, wait until one deadline.

        Args:
            budget_end: the ``time.monotonic()`` end of the shutdown budget, if
                known (the deadline is then, but within 0.5 to 5 s from now).
        """
        self._socket.detach(budget_end)

    def flush(self) -> bool:
        """After :meth:`detach`: wait for the held messages to go out; the rest is logged lost."""
        return self._socket.flush()

    # Each lifecycle message carries a STATUS= line: what ``systemctl status``
    # shows until the next transition or the program's own ctx.set_status().
    # The one exception: a READY=1 ending a start or a reload keeps quiet about
    # "running" when the program has just said something more telling.

    def ready(self, status: str | None = None) -> None:
        """Report startup (or a reload) complete; MAINPID names us for a forked daemon.

        Args:
            status: the STATUS= to send in any case (a failed reload says so).
                None: ``running``, unless the program set its own status since
                the previous lifecycle message; then READY=1 carries no STATUS=
                and the program's stays in ``systemctl status``.
        """
        assignments = ["READY=1", f"MAINPID={os.getpid()}"]
        if status is not None:
            assignments.append(f"STATUS={_one_line(status)}")
        elif not self.program_status_set:
            assignments.append("STATUS=running")
        self.program_status_set = False
        self._say(READY, *assignments)

    def reloading(self) -> None:
        """Report a reload starting, stamped with CLOCK_MONOTONIC (Type=notify-reload needs it)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.program_status_set = False
        self._say(RELOADING, "RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        """Report the shutdown sequence starting."""
        self.program_status_set = False
        self._say(STOPPING, "STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        """Set the free-form status ``systemctl status`` shows (the program's own)."""
        self.program_says(f"STATUS={_one_line(text)}")

    def program_says(self, *assignments: str) -> bool:
        """Send the program's own ``assignments``, remembering a STATUS= among them."""
        sent = self.send(*assignments)
        if sent and any(a.startswith("STATUS=") for a in assignments):
            self.program_status_set = True
        return sent

    def failed(self, message: str, errno: int | None = None) -> None:
        """Report a startup failure: its message as STATUS=, and ERRNO= when known."""
        extra = () if errno is None else (f"ERRNO={errno}",)
        self._say(FAILED, f"STATUS={_one_line(message)}", *extra)

    def watchdog(self) -> None:
        """Tell the manager the daemon is alive (WatchdogSec=)."""
        self._say(WATCHDOG, "WATCHDOG=1")

    def hand_over(self, pid: int) -> None:
        """Name ``pid`` the service's main process, then say nothing more (an upgrade's end)."""
        self._say(MAINPID, f"MAINPID={pid}")
        self.close()

    def fileno(self) -> int:
        """The socket's descriptor, -1 once closed."""
        return self._socket.fileno()

    def close(self) -> None:
        """Close the socket; later sends return False.

        Messages still held go out first: on the loop as the socket takes
        them, elsewhere within the deadline (see :meth:`detach`).

        The daemon's notifier (see :func:`set_default_notifier`) gives the
        variables it withheld back to the environment: the run is over, and a
        second ``run()`` in this process (which looks for ``NOTIFY_SOCKET``)
        speaks to the service manager as the first did.
        """
        self._socket.close()
        if _default is not None and _default[1] is self:
            give_back_withheld()


def notify_address(env: Mapping[str, str]) -> str | None:
    """The socket address ``NOTIFY_SOCKET`` names (``"\\0name"`` for ``@name``), None if unset.

    Raises:
        StartupError: it is not a path or an ``@abstract`` name that fits in
            ``sun_path``, so READY=1 could never reach the manager.
    """
    value = env.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        address = "\0" + value[1:]
    elif value.startswith("/"):
        address = value
    else:
        raise StartupError(f"NOTIFY_SOCKET: unsupported address {value!r} (need /path or @name)")
    if len(os.fsencode(address)) > _MAX_PATH:
        raise StartupError(f"NOTIFY_SOCKET: address too long: {value!r}")
    return address


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    text = env.get("WATCHDOG_USEC", "").strip()
    # What sd_watchdog_enabled(3) takes: a uint64 in ASCII digits ("²" is
    # str.isdigit() but int() refuses it, as it refuses 5,000 digits).
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or not 0 < int(text) < 2**64:
        return None
    pid = env.get("WATCHDOG_PID", "").strip()
    if pid and pid != str(os.getpid()):
        # Set for another process (our launcher, before a detach): not ours to feed.
        return None
    # Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is survivable.
    # Never more often than WATCHDOG_FLOOR: WATCHDOG_USEC=1 asked for two million
    # pings a second, a loop that did nothing else, for a timeout no loop can keep.
    return max(int(text) / 2_000_000, WATCHDOG_FLOOR)


def _one_line(text: str) -> str:
    # A newline would end the assignment and let the rest pass as another one.
    # systemd ignores a whole message holding a NUL (a READY=1 with it), and a
    # STATUS= that is not UTF-8: controls and undecodable bytes go escaped.
    line = printable(" ".join(text.splitlines()))
    encoded = line.encode("utf-8", "backslashreplace")
    if len(encoded) <= _STATUS_MAX:
        return line
    # A long error (a validation report listing every field) is cut, between
    # characters: systemd ignores a message of PIPE_BUF bytes or more whole.
    return encoded[: _STATUS_MAX - 3].decode("utf-8", "ignore") + "\u2026"


async def run_watchdog(notifier: Notifier, interval: float) -> None:
    """Send ``WATCHDOG=1`` now and every ``interval`` seconds, until cancelled.

    Runs as a task on the daemon's own loop on purpose: if the loop is blocked,
    the pings stop and the manager restarts the stuck daemon.
    """
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


class SuccessorNotifier(Notifier):
    """An upgrade successor's sd_notify socket, silent until the hand-over.

    Before it the old daemon is the service's main process: a READY=1 with our
    MAINPID, or a STOPPING=1 of a failing successor, would mislead the manager
    (with ``NotifyAccess=all`` it would believe them). See :mod:`._upgrade`.
    """

    held = True
    #: the last STATUS= the program set while held (its startup hook's, say).
    _withheld_status: str | None = None

    def _say(self, kind: str, *assignments: str) -> bool:
        if self.held:
            return False
        return super()._say(kind, *assignments)

    def program_says(self, *assignments: str) -> bool:
        if self.held:
            # Kept for READY=1: after a fresh start the status a startup hook
            # set stays in `systemctl status`; after an upgrade it said
            # "running", as if the same program had said nothing.
            for assignment in assignments:
                if assignment.startswith("STATUS="):
                    self._withheld_status = assignment.removeprefix("STATUS=")
            return False
        return super().program_says(*assignments)

    def release(self) -> None:
        """Speak from now on, starting with READY=1, MAINPID=us and the program's status."""
        self.held = False
        status, self._withheld_status = self._withheld_status, None
        self.ready(status)

    @classmethod
    def for_successor(cls, owns_watchdog: bool) -> Notifier | None:
        """From ``NOTIFY_SOCKET``; the watchdog is ours if it was the old daemon's."""
        if owns_watchdog:
            # In the environment, not only in our notifier: our own upgrade hands
            # the watchdog on only if WATCHDOG_PID names us, and the old daemon's
            # pid left there made the generation after next stop feeding it.
            os.environ["WATCHDOG_PID"] = str(os.getpid())
        return cls.from_env()


_default: tuple[int, Notifier] | None = None


#: The manager's variables meant for the daemon alone (sd_notify(3)'s
#: ``unset_environment``): a child inheriting them would speak for the service.
_DAEMON_ONLY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def set_default_notifier(notifier: Notifier | None) -> None:
    """Make ``notify`` use ``notifier`` in this process (connected before any chroot).

    The daemon's notifier takes ``NOTIFY_SOCKET`` and the watchdog's variables
    out of the environment: a child the program starts (a helper that is itself
    a notify user, another aiodaemon daemon) would otherwise send its own
    ``READY=1``, ``MAINPID=`` and ``STOPPING=1`` to the service's manager, which
    believes them under ``NotifyAccess=all``.
    """
    global _default
    _default = None if notifier is None else (os.getpid(), notifier)
    if notifier is not None:
        withhold_from_children(_DAEMON_ONLY_VARIABLES)


def default_notifier_fds() -> list[int]:
    """The socket ``notify`` already opened in this process, if any (called before ``run()``)."""
    if _default is None or _default[0] != os.getpid() or _default[1].fileno() < 0:
        return []
    return [_default[1].fileno()]


def notify(*assignments: str) -> bool:
    """Send ``NAME=value`` assignments to the service manager, e.g. ``sd_notify("STATUS=warm")``.

    Exported as ``aiodaemon.sd_notify`` for a program's own messages. Returns
    False when there is no ``NOTIFY_SOCKET`` or the message could not be sent.
    In a running daemon it never waits: a message the manager's full queue
    refuses is held, in order, and sent once it takes it (True).

    Raises:
        TypeError: an assignment is not a str (at the call, under systemd or not).
    """
    for assignment in assignments:
        if not isinstance(assignment, str):
            # Checked before NOTIFY_SOCKET is looked at: only the sender needs a
            # str, so bytes passed in development and failed under systemd.
            raise TypeError(
                f"sd_notify: each assignment must be a str ('NAME=value'),"
                f" not {type(assignment).__name__}"
            )
    global _default
    if _default is None or _default[0] != os.getpid():
        try:
            # A child the daemon forked (multiprocessing) finds NOTIFY_SOCKET
            # withheld: it speaks to the daemon's manager as the daemon did.
            notifier = Notifier.from_env() if _default is None else Notifier(_default[1].address)
        except StartupError:
            return False
        if notifier is None:
            return False
        _default = (os.getpid(), notifier)
    return _default[1].program_says(*assignments)
