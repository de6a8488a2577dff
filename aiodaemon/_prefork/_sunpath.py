"""AF_UNIX addresses for socket files, however long their path.

``sun_path`` holds 107 bytes of path; a longer one is reached through
``/proc/self/fd`` of its directory, so a deep pidfile directory never makes a
control socket (or a ``unix:`` listener) fail. No ``socket`` import: the CLI's
control client needs only this.
"""

from __future__ import annotations

import os

__all__ = ["SUN_PATH_MAX", "name_too_long", "shown_unix_name", "unix_address"]

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


def name_too_long(path: str) -> str | None:
    """Why no unix socket can be bound at ``path``, or None when one can.

    A path past ``sun_path`` is reached as ``/proc/self/fd/N/NAME``, which must
    fit in turn: N is the directory's fd, below the descriptor limit, so the
    file name alone is bounded. One message for every socket option (control,
    ``listen=``, ``health``): the name's length and the limit.
    """
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return None
    name = os.fsencode(os.path.basename(path))
    longest = SUN_PATH_MAX - len(f"/proc/self/fd/{max(os.sysconf('SC_OPEN_MAX'), 0)}/")
    if len(name) <= longest:
        return None
    return f"has a file name too long for a unix socket ({len(name)} bytes, at most {longest})"


def shown_unix_name(name: str | bytes, path: str | None = None) -> str:
    """A unix socket's ``getsockname()`` as the daemon shows it: its path, or ``@name``.

    An abstract name (a leading NUL, as systemd's ``ListenStream=@name`` binds
    it) is written with ``@``, as ``ss`` and systemd write it, not as a NUL.
    ``path``: the socket's configured path, shown for a socket bound through
    ``/proc/self/fd`` (its name is that of a directory fd long closed).
    """
    text = name.decode(errors="backslashreplace") if isinstance(name, bytes) else name
    if path is not None and text.startswith("/proc/self/fd/"):
        return path
    if text.startswith("\0"):
        return "@" + text[1:]
    return text
