"""Paths as a chrooted daemon names them, worked out on the host before the chroot.

Symlinks on the way to a file can only be resolved from the host's file system:
after the chroot an absolute link target means something else, or nothing.
"""

from __future__ import annotations

import os

__all__ = ["seen_from"]


def seen_from(root: str, path: str, *, follow: bool = False) -> str | None:
    """``path`` as a process chrooted to ``root`` names it; None when it is outside ``root``.

    The directory is always resolved. ``follow`` resolves the last component
    too: for a path the daemon connects to, such as a syslog socket
    (``/dev/log`` is a symlink). Without it the name is kept, as ``lstat``,
    ``unlink`` and an ``O_NOFOLLOW`` open see it: for a file the daemon made or
    opened itself (pidfile, log files, its unix sockets).
    """
    jail = os.path.realpath(root)
    if follow:
        real = os.path.realpath(path)
    else:
        directory, name = os.path.split(path)
        real = os.path.normpath(os.path.join(os.path.realpath(directory), name))
    if real == jail:
        return "/"
    inside = jail.rstrip("/") + "/"
    return "/" + real.removeprefix(inside) if real.startswith(inside) else None
