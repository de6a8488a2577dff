"""What the parsed command line says where commands share it: ``--user``, ``--control``.

Also the error for what argparse cannot see (an unknown user, an empty
``--pidfile``, a malformed ``--listen``): :class:`UsageError`, which
:func:`._main.main` prints as one line, exit status 2.
"""

from __future__ import annotations

import argparse

__all__ = ["UsageError", "control_path", "owner"]


class UsageError(Exception):
    """A bad command line found after parsing: printed as one line, exit 2."""


def owner(args: argparse.Namespace) -> int | None:
    """The uid ``--user`` names (the daemon's user), None without it."""
    from ._pidfile_trust import user_id

    try:
        return None if args.user is None else user_id(args.user)
    except ValueError as exc:
        raise UsageError(f"--user: {exc}") from None


def control_path(args: argparse.Namespace, pidfile: str) -> str:
    """``--control``, or where a daemon with this pidfile binds its control socket."""
    # Strings, not pathlib: importing it costs a control command ~2 ms.
    return str(args.control) if args.control is not None else pidfile + ".ctl"
