"""The notify messages a busy service manager has not taken yet: in order, coalesced, bounded.

What systemd needs of them, and so what may be merged away while they wait:

- only the latest ``STATUS=`` is shown: a message carrying one makes the held
  messages that say nothing else (a program's ``ctx.set_status()``) useless;
- one ``WATCHDOG=1`` says the daemon is alive as well as ten;
- ``READY=1``, ``RELOADING=1`` and ``STOPPING=1`` keep their order, and each
  ``RELOADING=1`` its ``READY=1`` after it. A reload that began and ended
  while both its messages still waited is dropped as a pair when the next one
  begins: the later ``RELOADING=1`` is stamped (``MONOTONIC_USEC=``) after
  the SIGHUP that asked for the earlier one, so a ``Type=notify-reload``
  manager sees every reload it asked for begin and end;
- the daemon's own lifecycle messages are never dropped for room: they are a
  few by construction. The program's own messages (``aiodaemon.sd_notify``)
  are, the oldest first, past :data:`MAX_HELD` messages or
  :data:`MAX_HELD_BYTES` bytes.
"""

from __future__ import annotations

__all__ = [
    "FAILED",
    "MAINPID",
    "MAX_HELD",
    "MAX_HELD_BYTES",
    "OTHER",
    "READY",
    "RELOADING",
    "STATUS",
    "STOPPING",
    "WATCHDOG",
    "Backlog",
    "Held",
]

#: The daemon's own messages, by what they report.
READY, RELOADING, STOPPING, FAILED, MAINPID = "ready", "reloading", "stopping", "failed", "mainpid"
#: ``WATCHDOG=1`` alone; ``STATUS=`` assignments alone; anything else (the program's).
WATCHDOG, STATUS, OTHER = "watchdog", "status", "other"
#: Kinds never dropped to make room.
_KEPT = frozenset((READY, RELOADING, STOPPING, FAILED, MAINPID))

#: Held messages beyond which the program's oldest are dropped. The daemon's own
#: stay a handful whatever happens (see the module docstring).
MAX_HELD = 64
#: Bytes of held messages beyond which the program's oldest are dropped.
MAX_HELD_BYTES = 256 * 1024


class Held:
    """One message waiting for the manager's socket."""

    __slots__ = ("data", "has_status", "kind", "name")

    def __init__(self, kind: str, assignments: tuple[str, ...], data: bytes) -> None:
        self.kind = kind
        self.data = data
        #: whether it sets STATUS=, superseding held status-only messages.
        self.has_status = any(a.startswith("STATUS=") for a in assignments)
        #: its first assignment's name (``READY``), for the log.
        self.name = assignments[0].partition("=")[0] if assignments else ""


class Backlog:
    """The held messages of one notify socket, oldest first, and what became of the others."""

    __slots__ = ("_held", "bytes", "dropped", "merged", "sent", "since")

    def __init__(self) -> None:
        self._held: list[Held] = []
        self.bytes = 0
        #: since the backlog was last empty: messages merged into later ones,
        #: dropped (for room, or refused by a vanished manager), and sent.
        self.merged = self.dropped = self.sent = 0
        #: the ``time.monotonic()`` of the first message held since it was empty.
        self.since: float | None = None

    def __len__(self) -> int:
        return len(self._held)

    def first(self) -> bytes:
        """The datagram to send next."""
        return self._held[0].data

    def names(self) -> list[str]:
        """What is held, as the first assignment's name of each (``["READY", "STOPPING"]``)."""
        return [held.name for held in self._held]

    def add(self, held: Held, now: float) -> None:
        """Hold ``held`` behind the others, merging what it makes useless."""
        if self.since is None:
            self.since = now
        if held.kind == WATCHDOG and any(h.kind == WATCHDOG for h in self._held):
            self.merged += 1
            return
        if held.has_status:
            self._remove([h for h in self._held if h.kind == STATUS])
        if held.kind == RELOADING:
            self._remove(self._finished_reload())
        self._held.append(held)
        self.bytes += len(held.data)
        while len(self._held) > MAX_HELD or self.bytes > MAX_HELD_BYTES:
            droppable = next((h for h in self._held if h.kind not in _KEPT), None)
            if droppable is None:
                break
            self._remove([droppable], merged=False)

    def pop(self, sent: bool) -> None:
        """The first message is gone: sent, or refused for good (``sent`` False)."""
        held = self._held.pop(0)
        self.bytes -= len(held.data)
        if sent:
            self.sent += 1
        else:
            self.dropped += 1

    def end(self) -> None:
        """Forget every message still held and the counts: a new episode begins with the next."""
        self._held.clear()
        self.bytes = self.merged = self.dropped = self.sent = 0
        self.since = None

    def _finished_reload(self) -> list[Held]:
        """The last held ``RELOADING=1`` and its ``READY=1``, when both still wait."""
        for index in range(len(self._held) - 1, -1, -1):
            if self._held[index].kind == RELOADING:
                after = self._held[index + 1 :]
                ready = next((h for h in after if h.kind == READY), None)
                return [] if ready is None else [self._held[index], ready]
        return []

    def _remove(self, messages: list[Held], *, merged: bool = True) -> None:
        """Take ``messages`` out: merged into a later one, or else dropped for room."""
        for held in messages:
            self._held.remove(held)
            self.bytes -= len(held.data)
            if merged:
                self.merged += 1
            else:
                self.dropped += 1
