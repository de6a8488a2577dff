"""What kind of file an ``st_mode`` is, in the words every message uses.

One table for the whole package: the start's refusals (log file, pidfile,
unix listener) and the commands' (a control path that is no socket) name a
planted file the same way. Never imports asyncio; only ``stat``, so the
control commands pay nothing for it.
"""

from __future__ import annotations

import stat

__all__ = ["describe_mode"]

_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def describe_mode(mode: int) -> str:
    """What kind of file ``mode`` (an ``st_mode``) is, for an error message: "a FIFO"."""
    return next((name for test, name in _KINDS if test(mode)), "a file of an unknown kind")
