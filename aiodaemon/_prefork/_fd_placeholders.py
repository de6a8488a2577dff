"""Placeholders on closed descriptor numbers that must stay free of aiodaemon's own.

The kernel hands out the lowest free number. ``DaemonContext(files_preserve=[3])``
with fd 3 closed (a ``LISTEN_FDS`` descriptor that was not passed, say) names
such a number: the ``/dev/null`` that ``open()`` opened for the stdio took it,
and the closing of every other descriptor, told to keep 3, kept it there. The
daemon then found ``/dev/null`` on fd 3 where python-daemon leaves it closed
(and a pidfile's lock or the readiness pipe could land there as well). Each
such number holds a copy of fd 0 until aiodaemon's own descriptors are open.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["hold_closed_fds", "let_go"]


def hold_closed_fds(fds: Iterable[int]) -> list[int]:
    """Put a close-on-exec placeholder on each closed fd of ``fds`` from 3 up; return those.

    A copy of fd 0, which is open (see ``_stdfds.fill_std_fds``): nothing is
    opened, so nothing can fail for want of ``/dev/null``. A number past the
    descriptor limit is skipped: nothing can be opened there either.
    Never raising: without a placeholder, a number is only as exposed as before.
    """
    held: list[int] = []
    for fd in sorted(set(fds)):
        if fd < 3 or _is_open(fd):
            continue
        try:
            os.dup2(0, fd, inheritable=False)
        except OSError:  # EBADF: past RLIMIT_NOFILE
            continue
        held.append(fd)
    return held


def let_go(held: Iterable[int]) -> None:
    """Close the placeholders ``held``: their numbers are closed again, as they were."""
    for fd in held:
        os.close(fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno != errno.EBADF
    return True
