"""Whether the control commands may believe a pidfile: never another user's planted one.

``start`` refuses a pidfile another user owns in a shared sticky directory
(:mod:`aiodaemon._prefork._sharedfile`): whoever planted it can lock it from a process of its
own and write any pid into it. ``status``, ``stop``, ``reload`` and
``upgrade`` apply the same rule before they read it, so they neither report
the planter's process as the daemon, nor signal it, nor remove the file as
stale. The trusted owners are root, the caller, the directory's owner and the
daemon's user when ``--user`` names it: a root daemon that dropped to ``svc``
leaves an ``svc``-owned pidfile, which ``svc`` manages as it is and root with
``--user svc``. Outside shared sticky directories nothing changes.
"""

from __future__ import annotations

import os

from .._prefork._messages import shown
from .._prefork._sharedfile import is_planted

__all__ = ["untrusted_pidfile", "user_id"]


def untrusted_pidfile(path: str | os.PathLike[str], owner: int | None) -> str | None:
    """Why the pidfile at ``path`` is not to be believed, or None when it may be.

    Args:
        path: the pidfile.
        owner: the uid the daemon runs as, when the caller said (``--user``).
    """
    if not is_planted(path, owner):
        return None
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return None  # gone meanwhile: read as missing
    return (
        f"pidfile {path} is owned by uid {uid} (another user) in a shared sticky directory; "
        "not trusted (give --user when it is the daemon's user)"
    )


def user_id(user: str) -> int:
    """The uid of ``user``, a name or a number (``--user``).

    Raises:
        ValueError: no such user, or a uid out of range, in the words the
            daemon's ``--user`` check uses (``start`` and ``stop`` say the same).
    """
    # isascii: "²" and the Arabic-Indic digits are str.isdigit() but no uid
    # (int("²") raises), as run()'s user= reads them (_identity).
    if user.isascii() and user.isdigit():
        # Counted first: int() refuses thousands of digits in words of its own.
        # 2**32 - 1 is the kernel's "no uid" (-1), never a process's.
        if len(user.lstrip("0")) > 10 or int(user) >= 2**32 - 1:
            raise ValueError(f"id out of range: {shown(user)}")
        return int(user)
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ValueError(f"unknown user {shown(user)}") from None
