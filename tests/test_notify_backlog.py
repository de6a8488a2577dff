"""What waits for a busy service manager's notify socket, and what is merged away meanwhile."""

from __future__ import annotations

from aiodaemon._run._notify_backlog import (
    MAX_HELD,
    OTHER,
    READY,
    RELOADING,
    STATUS,
    STOPPING,
    WATCHDOG,
    Backlog,
    Held,
)


def _held(kind: str, *assignments: str) -> Held:
    return Held(kind, assignments, "\n".join(assignments).encode())


def _waiting(backlog: Backlog) -> list[bytes]:
    out = []
    while len(backlog):
        out.append(backlog.first())
        backlog.pop(True)
    return out


def test_only_the_latest_status_waits_behind_the_lifecycle_messages() -> None:
    """A held status goes when a later message sets one; READY=1 without one keeps it before it."""
    backlog = Backlog()
    backlog.add(_held(STATUS, "STATUS=warming"), 0.0)
    backlog.add(_held(READY, "READY=1", "MAINPID=7"), 0.0)
    backlog.add(_held(STATUS, "STATUS=warm"), 0.0)
    backlog.add(_held(WATCHDOG, "WATCHDOG=1"), 0.0)
    assert _waiting(backlog) == [b"READY=1\nMAINPID=7", b"STATUS=warm", b"WATCHDOG=1"]
    backlog.add(_held(STATUS, "STATUS=warm"), 0.0)
    backlog.add(_held(STOPPING, "STOPPING=1", "STATUS=stopping"), 0.0)
    assert _waiting(backlog) == [b"STOPPING=1\nSTATUS=stopping"]


def test_the_program_s_oldest_messages_make_room_never_the_daemon_s() -> None:
    """Past MAX_HELD, the program's oldest messages go, counted; READY=1 and one WATCHDOG=1 stay."""
    backlog = Backlog()
    backlog.add(_held(READY, "READY=1"), 0.0)
    for n in range(MAX_HELD + 5):
        backlog.add(_held(OTHER, f"EXTEND_TIMEOUT_USEC={n}"), 0.0)
        backlog.add(_held(WATCHDOG, "WATCHDOG=1"), 0.0)
    backlog.add(_held(RELOADING, "RELOADING=1"), 0.0)
    assert len(backlog) == MAX_HELD
    assert backlog.dropped > 0
    waiting = _waiting(backlog)
    assert waiting[0] == b"READY=1"
    assert waiting[-1] == b"RELOADING=1"
    assert waiting.count(b"WATCHDOG=1") <= 1
    extensions = [d for d in waiting if d.startswith(b"EXTEND_TIMEOUT_USEC=")]
    assert extensions[-1] == f"EXTEND_TIMEOUT_USEC={MAX_HELD + 4}".encode()
    assert extensions[0] != b"EXTEND_TIMEOUT_USEC=0"


def test_a_reload_that_began_and_ended_unheard_gives_way_to_the_next() -> None:
    """Held start READY=1, then two reloads: the manager hears READY, the last RELOADING, READY."""
    backlog = Backlog()
    backlog.add(_held(READY, "READY=1", "STATUS=running"), 0.0)
    backlog.add(_held(RELOADING, "RELOADING=1", "MONOTONIC_USEC=1", "STATUS=reloading"), 0.0)
    backlog.add(_held(OTHER, "EXTEND_TIMEOUT_USEC=5"), 0.0)
    backlog.add(_held(READY, "READY=1", "STATUS=running"), 0.0)
    backlog.add(_held(RELOADING, "RELOADING=1", "MONOTONIC_USEC=2", "STATUS=reloading"), 0.0)
    assert backlog.merged == 2
    backlog.add(_held(READY, "READY=1"), 0.0)
    assert _waiting(backlog) == [
        b"READY=1\nSTATUS=running",
        b"EXTEND_TIMEOUT_USEC=5",
        b"RELOADING=1\nMONOTONIC_USEC=2\nSTATUS=reloading",
        b"READY=1",
    ]
