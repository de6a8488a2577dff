"""The sd_notify socket: one datagram per message, and never a wait on the daemon's event loop.

A service manager that stops reading its notify socket for a while (PID 1
busy or stalled) lets the socket's queue fill (``net.unix.max_dgram_qlen``:
512 datagrams on systemd hosts, 10 by the kernel's default), and a send then
waits for room. On the daemon's loop that wait froze everything, the served
ports and the health endpoint too, for as long as the send's timeout, at
every message (a reload's two, each watchdog ping). Now nothing waits there:
the socket is non-blocking, so the healthy path is one ``sendmsg``; what it
refuses is held (:mod:`._notify_backlog`) and sent in order once the socket
takes datagrams again, which the loop learns by watching it for writability (a
datagram socket connected to a full receiver becomes writable when the
receiver's queue has room). One record says messages wait, one that they
went out (or, at the exit, were lost).

Where no loop runs (before it, after it closed: the daemon's last messages, a
forced exit, a program's ``sd_notify()`` outside a daemon) a send waits, within
a bound, as it always did.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import TYPE_CHECKING

import structlog

from ._notify_backlog import Backlog, Held

if TYPE_CHECKING:
    import asyncio

__all__ = ["SEND_TIMEOUT", "NotifySocket"]

_log = structlog.get_logger("aiodaemon")

#: Longest wait for the manager's socket where no loop runs: READY=1 is worth
#: a short wait, a hung manager must not hold us for good.
SEND_TIMEOUT = 5.0
#: Shortest wait for what is held when the loop has ended, whatever is left of
#: the shutdown budget (as the log's own drain).
_FINAL_WAIT = 0.5


class NotifySocket:
    """A datagram socket connected to the manager's; see the module docstring.

    Thread-safe: a program may call ``sd_notify()`` from any thread. Sends
    never raise; a vanished manager makes them return False (the manager
    restarting must not take the daemon down), and each is tried again after
    a new ``connect``, once.
    """

    def __init__(self, address: str) -> None:
        """Open the socket and connect it to ``address`` (a path or ``"\\0name"``)."""
        self.address = address
        # Python sockets are close-on-exec: the program's own subprocesses must
        # not be able to speak for us. Non-blocking: every send is MSG_DONTWAIT.
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        # Connecting now resolves the path once, so sends keep working after a
        # chroot or a privilege drop has hidden it from us.
        self._connected = self._connect()
        self._lock = threading.Lock()
        self._backlog = Backlog()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        #: the loop watches the socket for writability (held messages wait).
        self._watching: asyncio.AbstractEventLoop | None = None
        #: where no loop runs any more: the ``time.monotonic()`` waits end at.
        self._deadline: float | None = None
        #: the daemon's socket (it ran on a loop): what waits or is lost is logged.
        self._daemon = False
        #: closed to new messages (held ones may still go out).
        self._sealed = False
        self._closed = False

    # --- the loop's side --------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``'s thread: from now on no send waits, what the socket refuses is held."""
        with self._lock:
            self._loop, self._loop_thread = loop, threading.get_ident()
            self._daemon = True

    def detach(self, budget_end: float | None) -> None:
        """The loop ends: sends wait again, all of them until one deadline.

        Args:
            budget_end: the ``time.monotonic()`` end of the shutdown budget, if
                known; the deadline is then, but at least :data:`_FINAL_WAIT`
                and at most :data:`SEND_TIMEOUT` from now.
        """
        now = time.monotonic()
        left = SEND_TIMEOUT if budget_end is None else budget_end - now
        with self._lock:
            self._loop = None
            self._deadline = now + min(SEND_TIMEOUT, max(_FINAL_WAIT, left))
            watching = self._watching
            if watching is not None and threading.get_ident() == self._loop_thread:
                self._watching = None
                if not watching.is_closed():
                    watching.remove_writer(self._sock.fileno())
            # Otherwise (a backstop thread: the loop is blocked) the watch ends
            # itself at its next call, on the loop's thread.

    def _watch(self) -> None:
        """On the loop's thread: send what is held as soon as the socket takes it."""
        with self._lock:
            if len(self._backlog):
                self._watch_locked()

    def _on_writable(self) -> None:
        with self._lock:
            watching = self._watching
            if self._loop is None:
                # Detached from another thread: the waits after the loop take over.
                if watching is not None:
                    watching.remove_writer(self._sock.fileno())
                self._watching = None
                return
            if not self._send_held():
                return
            if watching is not None:
                watching.remove_writer(self._sock.fileno())
            self._watching = None
            report = self._end_episode()
            if self._sealed:
                self._close_socket()
        self._log_delivered(*report)

    # --- sending ----------------------------------------------------------------------

    def send(self, kind: str, assignments: tuple[str, ...], data: bytes) -> bool:
        """Send one datagram; False if it did not go out and is not held either.

        Args:
            kind: what the message is to the backlog (see :mod:`._notify_backlog`).
            assignments: the ``NAME=value`` lines, as given.
            data: the datagram.
        """
        with self._lock:
            if self._sealed:
                return False
            loop = self._loop
            if loop is None:
                deadline = self._deadline
                if deadline is None:
                    deadline = time.monotonic() + SEND_TIMEOUT
                if self._send_held(deadline) and self._send_waiting(data, deadline):
                    return True
                if self._daemon:
                    # The daemon's last words: held with the rest, to be said lost with them.
                    self._backlog.add(Held(kind, assignments, data), time.monotonic())
                return False
            first = not len(self._backlog)
            if first:
                outcome = self._try(data)
                if outcome is not None:
                    return outcome
            held = Held(kind, assignments, data)
            self._backlog.add(held, time.monotonic())
            if threading.get_ident() == self._loop_thread:
                self._watch_locked()
            else:
                loop.call_soon_threadsafe(self._watch)
        if first:
            _log.warning("sd_notify waiting", held=held.name)
        return True

    def _watch_locked(self) -> None:
        if self._watching is None and self._loop is not None:
            self._watching = self._loop
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def flush(self) -> bool:
        """Where no loop runs: wait (until the deadline) for what is held to go out.

        What is still held then is logged as lost and forgotten. Returns
        whether nothing was left.
        """
        with self._lock:
            if not len(self._backlog):
                return True
            deadline = self._deadline
            if deadline is None:
                deadline = time.monotonic() + SEND_TIMEOUT
            if self._send_held(deadline):
                report = self._end_episode()
                lost = None
            else:
                lost = self._backlog.names()
                report = self._end_episode()
        if lost is None:
            self._log_delivered(*report)
            return True
        waited, sent, merged, dropped = report
        _log.error(
            "sd_notify messages lost",
            lost=lost,
            waited=waited,
            sent=sent,
            merged=merged,
            dropped=dropped,
        )
        return False

    def _send_held(self, deadline: float | None = None) -> bool:
        """Send the held messages in order; whether none is left.

        Args:
            deadline: wait for the socket until then; None: only what it takes now.
        """
        backlog = self._backlog
        while len(backlog):
            outcome = self._try(backlog.first())
            if outcome is None:
                if deadline is None or not self._wait_writable(deadline):
                    return False
                continue
            backlog.pop(outcome)
        return True

    def _send_waiting(self, data: bytes, deadline: float) -> bool:
        while True:
            outcome = self._try(data)
            if outcome is not None:
                return outcome
            if not self._wait_writable(deadline):
                return False

    def _try(self, data: bytes) -> bool | None:
        """One datagram: True sent, None refused for now (the queue is full), False not at all."""
        for _ in range(2):
            if not self._connected:
                self._connected = self._connect()
                if not self._connected:
                    return False
            try:
                self._sock.send(data, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return None
            except OSError:
                # The manager's socket may have been replaced (daemon-reexec):
                # connect again, once, to whatever the path names now.
                self._connected = False
            else:
                return True
        return False

    def _wait_writable(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLOUT)
        return bool(poller.poll(left * 1000))

    def _connect(self) -> bool:
        try:
            self._sock.connect(self.address)
        except OSError:
            return False
        return True

    # --- the end ----------------------------------------------------------------------

    def _end_episode(self) -> tuple[float, int, int, int]:
        """Forget the episode; (waited, sent, merged, dropped) for its record."""
        backlog = self._backlog
        since = backlog.since
        waited = 0.0 if since is None else round(time.monotonic() - since, 3)
        report = waited, backlog.sent, backlog.merged, backlog.dropped
        backlog.end()
        return report

    def _log_delivered(self, waited: float, sent: int, merged: int, dropped: int) -> None:
        if self._daemon and (sent or merged or dropped):
            _log.info(
                "sd_notify caught up", waited=waited, sent=sent, merged=merged, dropped=dropped
            )

    def fileno(self) -> int:
        """The socket's descriptor, -1 once closed."""
        return -1 if self._sealed else self._sock.fileno()

    def close(self) -> None:
        """Refuse new messages; close the socket once what is held went out (or was lost).

        On the loop the held messages go on waiting for the socket; where none
        runs they get until the deadline (see :meth:`detach`).
        """
        with self._lock:
            self._sealed = True
            if self._loop is not None and len(self._backlog):
                return  # _on_writable closes it, or the last flush does
        self.flush()
        with self._lock:
            self._close_socket()

    def _close_socket(self) -> None:
        if not self._closed:
            self._closed = True
            if self._watching is not None and threading.get_ident() == self._loop_thread:
                if not self._watching.is_closed():
                    self._watching.remove_writer(self._sock.fileno())
                self._watching = None
            self._sock.close()
