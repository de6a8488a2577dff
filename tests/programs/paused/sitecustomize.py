"""Pause a command at its first look at a daemon: a control socket, or the kernel's locks.

Put on ``PYTHONPATH`` by tests whose command must look at the pidfile before an
event (an upgrade's hand-over) and go on after it. Where
``$AIODAEMON_TEST_PAUSE_AT`` says (``control``, the default: just before its
first connection to a control socket, ``*.ctl``; ``control-again``: just
before its second one; ``control:N``: just before its Nth one; ``locks``:
just before its first look at ``/proc/locks``, which tells whose lock the
pidfile holds; ``takeover``, for a daemon whose upgrade's new process
inherits it: that process once its pid is in the pidfile, before it serves
the control socket; never the old daemon,
whose rollback writes its pid back the same way; ``giveback``, the same
process once it gave the pidfile back (its second pid written in place: it
began to stop during its take-over), before the old daemon hears of it and
listens on the control socket again; ``stopping``, for a daemon:
once its loop took a stop signal, just before its shutdown binds the stopping
mark and arms the forced exit; ``open:SUFFIX:N``, for a command: just
before its Nth opening of a file whose path ends with SUFFIX; ``lock:N``,
for a command: just before its Nth opening of a pidfile to take its lock), it
creates ``$AIODAEMON_TEST_PAUSE/paused``, then waits (30 s at most) for
``$AIODAEMON_TEST_PAUSE/go``. A slow machine does the same, unasked.
Several points joined by ``+`` are paused at in turn, each counting from the
process's start: the Kth (K ≥ 2) with ``paused.K`` and ``go.K``.
"""

from __future__ import annotations

import os
import sys
import time

_DIRECTORY = os.environ.get("AIODAEMON_TEST_PAUSE")
_POINTS = os.environ.get("AIODAEMON_TEST_PAUSE_AT", "control").split("+")
#: How many points were paused at so far.
_paused: list[bool] = []
#: Started as an upgrade's new process (the variable leaves the environment at once).
_SUCCESSOR = "AIODAEMON_HANDOFF" in os.environ


#: Per point: the events it counts (connections, openings, writes) so far.
_counts: list[list[bool]] = [[] for _ in _POINTS]


def _is_the_pause_point(at: str, event: str, args: tuple[object, ...], seen: list[bool]) -> bool:
    if at == "locks":
        return event == "open" and args[0] == "/proc/locks"
    if at == "takeover":
        # An upgrade's new process past the pid it wrote over its parent's
        # (then trimmed: a start truncates to 0 instead), before it serves.
        return _SUCCESSOR and event == "os.truncate" and isinstance(args[1], int) and args[1] > 0
    if at == "giveback":
        if not (_SUCCESSOR and event == "os.truncate" and isinstance(args[1], int) and args[1] > 0):
            return False
        seen.append(True)
        return len(seen) == 2
    if at.startswith("open:"):
        _, suffix, count = at.split(":")
        if event != "open" or not str(args[0]).endswith(suffix):
            return False
        seen.append(True)
        return len(seen) == int(count)
    if at.startswith("lock:"):
        if event != "open" or not str(args[0]).endswith(".pid"):
            return False
        if not isinstance(args[2], int) or not args[2] & os.O_CREAT:
            return False  # a look at it, not the lock's opening
        seen.append(True)
        return len(seen) == int(at.split(":")[1])
    if at == "stopping":
        return event == "socket.bind" and "aiodaemon-stopping-" in str(args[1])
    if event != "socket.connect" or not isinstance(args[1], str) or not args[1].endswith(".ctl"):
        return False
    seen.append(True)
    if at.startswith("control:"):
        return len(seen) == int(at.split(":")[1])
    # "control-again": before the second connection, once the first met no answer it took.
    return len(seen) == (2 if at == "control-again" else 1)


def _pause(event: str, args: tuple[object, ...]) -> None:
    if _DIRECTORY is None or len(_paused) == len(_POINTS):
        return
    # Every point counts its events from the start; only the next one pauses.
    hits = [
        _is_the_pause_point(at, event, args, seen)
        for at, seen in zip(_POINTS, _counts, strict=True)
    ]
    if not hits[len(_paused)]:
        return
    _paused.append(True)
    suffix = "" if len(_paused) == 1 else f".{len(_paused)}"
    with open(os.path.join(_DIRECTORY, "paused" + suffix), "w"):
        pass
    deadline = time.monotonic() + 30
    go = os.path.join(_DIRECTORY, "go" + suffix)
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)


if _DIRECTORY is not None:
    sys.addaudithook(_pause)
