"""Standard descriptors 0-2: never left closed, so nothing acquired can land on them.

cron, some supervisors and ``cmd <&-`` start a program with fd 0, 1 or 2
closed. The kernel hands out the lowest free descriptor, so the pidfile or the
log file would become fd 0-2, and the detach, which points 0-2 at /dev/null or
the stdio files, would then close it under the daemon. Opening /dev/null onto
every closed standard fd first keeps every later descriptor above 2.
"""

from __future__ import annotations

import errno
import io
import os
import sys

__all__ = ["controlling_terminal", "fill_std_fds"]


def fill_std_fds() -> None:
    """Open /dev/null onto each closed fd of 0, 1 and 2, and give Python its streams back."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # The lowest free descriptor: this very fd, as the lower ones are open.
            null = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            # A standard fd is inherited by child processes, unlike os.open's.
            os.set_inheritable(fd, True)
    # Python sets a stream to None when its fd was closed at start-up; code that
    # prints (a start's error line, a pid) must find a file there, not None.
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="locale")
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(
            io.FileIO(1, "w", closefd=False), encoding="locale", line_buffering=True
        )
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False),
            encoding="locale",
            line_buffering=True,
            errors="backslashreplace",
        )


def controlling_terminal() -> tuple[int, int] | None:
    """The (major, minor) device of this process's controlling terminal; None without one.

    Read from ``/proc/self/stat`` (``tty_nr``): ``/dev/tty`` would name itself.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            # After the command's ")": state, ppid, pgrp, session, tty_nr.
            tty_nr = int(f.read().rsplit(b")", 1)[1].split()[4])
    except (OSError, ValueError, IndexError):
        return None
    if tty_nr == 0:
        return None
    return (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
