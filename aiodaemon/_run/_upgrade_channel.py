"""An upgrade's channel on the event loop: the hand-over's lines, and log reopens passed on.

While an upgrade runs, the old daemon and its successor write the same log
file, but logrotate's signal (``pkill -USR1 -L -F PIDFILE`` in
``postrotate``, or a SIGHUP) reaches only one of them: the pidfile's holder,
which is the old daemon until the successor writes its pid there, and the
successor from then on. So each process passes its own reopens on to the
other over the private channel (a line ``O``) for as long as both have it
open: the successor starting while the old daemon serves, and the old daemon
draining after the hand-over. A reopen passed on is not passed back, but on
to a third process: a successor upgraded while its own old daemon drains.

A reopen that arrives before the channel is read here (the successor still
importing its program) waits in the channel and is done once it is read; the
successor follows a rename before its first record, and the take-over
reopens a file whose path names another file by then (see
:meth:`._logwriter.LogWriter.follow_rename`), so no rotation is missed.

Loaded only by a daemon that upgrades, or is an upgrade's successor.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._logs._logwriter import LogWriter

__all__ = ["REOPEN", "ChannelLines"]

#: The line that passes a log reopen on to the other process.
REOPEN = b"O\n"
#: Bytes of a line past which the channel is taken as broken (an ``E`` line is one).
_LINE_LIMIT = 65536
#: Seconds between an old daemon's own looks for a renamed log file (see follow_renames_alone).
_RENAME_LOOK = 1.0


class ChannelLines:
    """One end of an upgrade's channel: its hand-over lines, with log reopens passed both ways.

    It reads and writes its own duplicate of the channel's descriptor, read
    by the loop until the channel ends: ``O`` lines reopen our log files at
    once, every other line waits for :meth:`readline`. Whoever holds the
    channel's socket may still write to it (the successor's ``R`` or ``E``)
    and close it. The duplicate is closed when the channel ends (the other
    process closed it or exited) or at :meth:`close`.

    Args:
        sock: the channel.
        logs: our log writer (None: nothing to reopen nor pass on).
    """

    def __init__(self, sock: socket.socket, logs: LogWriter | None) -> None:
        self._sock = sock.dup()
        # Non-blocking for the loop (and for the channel's other holder:
        # the flag belongs to the open file, whose lines are a few bytes).
        self._sock.setblocking(False)
        self._logs = logs
        self._buffer = bytearray()
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._open = True
        self._sent = False
        #: the other process ended without reading the channel at all (see :meth:`_readable`).
        self.never_read = False
        #: the other process closed the channel (exited), not we.
        self._peer_gone = False
        self._alone = False
        self._loop.add_reader(self._sock.fileno(), self._readable)
        if logs is not None:
            logs.reopen_listeners.append(self._pass_on)

    async def readline(self) -> bytes:
        """The next hand-over line (``R``, ``G``, ``W``, ``E...``); b"" once the channel ended."""
        line = await self._lines.get()
        if not line:
            self._lines.put_nowait(line)  # every later call sees the end too
        return line

    def send(self, line: bytes) -> None:
        """Write a hand-over line (a few bytes: the channel's buffer takes them at once).

        Raises:
            OSError: the channel is closed, or the other process is gone.
        """
        if not self._open:
            raise BrokenPipeError("the upgrade channel is closed")
        self._sock.send(line)
        self._sent = True

    def poll(self) -> None:
        """Read what the channel holds now, without waiting for the loop to see it."""
        if self._open:
            self._readable()

    def close(self) -> None:
        """Stop reading and passing reopens on, and close our duplicate."""
        self._end()

    def follow_renames_alone(self) -> None:
        """Once the other process is gone, look for a renamed log file ourselves now and then.

        For an old daemon after its hand-over: the successor passes rotations
        on, but may exit first (upgraded in turn, its drain shorter than ours),
        and then nothing tells us of one. We exit within ``shutdown_timeout``.
        """
        self._alone = True
        if self._peer_gone:
            self._look_for_rename()

    def _look_for_rename(self) -> None:
        if self._logs is not None:
            self._logs.follow_rename()
            self._loop.call_later(_RENAME_LOOK, self._look_for_rename)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            # The other process closed its end with bytes unread. Before any
            # line of ours, those are the secret the old daemon sent at the
            # spawn: a successor that never took the hand-off (an aiodaemon
            # older than upgrades, or a program that ended before calling it).
            self.never_read = not self._sent
            data = b""
        except OSError:
            data = b""
        if not data:
            self._peer_gone = self._open
            self._end()
            if self._alone and self._peer_gone:
                self._look_for_rename()
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if line == REOPEN:
                # The other process's signal: the same rotation, for our descriptor.
                if self._logs is not None:
                    self._logs.reopen(pass_on=False)
                    # And for a third process: upgraded again while our own old
                    # daemon still drains, we are the only one that reaches it.
                    for listener in tuple(self._logs.reopen_listeners):
                        if listener != self._pass_on:
                            listener()
            else:
                self._lines.put_nowait(line)
        if len(self._buffer) > _LINE_LIMIT:
            self._end()

    def _end(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._logs is not None:
            with contextlib.suppress(ValueError):
                self._logs.reopen_listeners.remove(self._pass_on)
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        if self._buffer:
            # A last line without its newline (a process that died writing it).
            self._lines.put_nowait(bytes(self._buffer))
            self._buffer.clear()
        self._lines.put_nowait(b"")

    def _pass_on(self) -> None:
        with contextlib.suppress(OSError):
            self.send(REOPEN)
