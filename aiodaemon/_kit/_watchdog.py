"""The testing kit's watchdog: kills the sessions of a dead test runner's daemons.

Run as a script (``python -I -S _watchdog.py``, standard library only), one per
test process, in a session of its own. Its stdin is a pipe whose only writer is
the test process, which writes ``+SID`` when it starts a daemon in session SID
(the daemon's pid) and ``-SID`` once it is done with it, before it reaps it. A
test process that dies, however (SIGKILL, ``os._exit``), closes the pipe: the
watchdog then kills every process still in the sessions left registered, the
daemon's own children included, which the daemon's parent-death signal does
not reach, and exits. A test process that exits cleanly has unregistered every
daemon: the watchdog exits killing nothing.

A session's id stays taken while any process is in it, so no stranger can be
in a registered session that still has members; each process is signalled
through a pidfd taken before its session is checked, so a pid reused meanwhile
is never reached.
"""

from __future__ import annotations

import os
import signal

#: Passes over /proc: a process forked while one pass signals is found by the next.
_PASSES = 5


def main() -> None:
    """Read registrations until the test process is gone, then kill what they name."""
    sessions: set[int] = set()
    pending = b""
    while True:
        try:
            chunk = os.read(0, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                sessions.add(int(line[1:]))
            elif line[:1] == b"-":
                sessions.discard(int(line[1:]))
    for _ in range(_PASSES):
        if not sum(_kill_session(sid) for sid in sessions):
            break


def _kill_session(sid: int) -> int:
    """SIGKILL every process of session ``sid``; how many there were."""
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            pidfd = os.pidfd_open(int(entry))
        except OSError:  # gone meanwhile
            continue
        try:
            if os.getsid(int(entry)) == sid:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                killed += 1
        except OSError:
            pass
        finally:
            os.close(pidfd)
    return killed


if __name__ == "__main__":
    main()
