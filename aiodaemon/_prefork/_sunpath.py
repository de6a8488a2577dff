"""AF_UNIX addresses for socket files, however long their path.

``sun_path`` holds 107 bytes of path; a longer one is reached through
``/proc/self/fd`` of its directory, so a deep pidfile directory never makes a
control socket (or a ``unix:`` listener) fail. No ``socket`` import: the CLI's
control client needs only this.
"""

from __future__ import annotations

import os

__all__ = ["SUN_PATH_MAX", "shown_unix_name", "unix_address"]

#: sun_path holds 108 bytes with the terminating NUL.
SUN_PATH_MAX = 107


def unix_address(path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """An address ``connect``/``bind`` accept for ``path``, and a directory fd to close after.

    Raises:
        OSError: the directory of a long ``path`` cannot be reached.
    """
    text = os.fsdecode(path)
    if len(os.fsencode(text)) <= SUN_PATH_MAX:
        return text, None
    directory, name = os.path.split(text)
    # O_PATH: a directory one may enter but not list (0711, like many /run/NAME
    # and home directories) is reached as ``bind``/``connect`` by path would reach
    # it; O_RDONLY would need read permission on it.
    dirfd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dirfd}/{name}", dirfd


def shown_unix_name(name: str | bytes) -> str:
    """A unix socket's ``getsockname()`` as the daemon shows it: its path, or ``@name``.

    An abstract name (a leading NUL, as systemd's ``ListenStream=@name`` binds
    it) is written with ``@``, as ``ss`` and systemd write it, not as a NUL.
    """
    text = name.decode(errors="backslashreplace") if isinstance(name, bytes) else name
    if text.startswith("\0"):
        return "@" + text[1:]
    return text
