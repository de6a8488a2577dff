"""The identity to drop to: ``user``/``group`` options resolved to ids.

Loaded only by a daemon that changes identity (and by errors naming the
user who runs us: :func:`effective_user`). Names are resolved in the
launching process, while the user and group databases (and NSS) are readable:
after a chroot they may not be.
"""

from __future__ import annotations

import os
from typing import Any

from ..exceptions import ConfigError
from ._messages import shown

__all__ = ["Identity", "effective_user", "parse_identity"]


class Identity:
    """The user and group to drop to, resolved to ids while names still resolve."""

    # A plain class, not a NamedTuple, which compiles a ForwardRef per field.

    __slots__ = ("gid", "group", "uid", "user_name")

    def __init__(
        self,
        uid: int | None,
        gid: int | None,
        user_name: str | None,
        group: str | int | None = None,
    ) -> None:
        self.uid = uid
        #: the group to drop to: ``group=``'s, or else the user's primary group.
        self.gid = gid
        #: the user's name, for ``initgroups``; None when only a group (or a bare
        #: uid with no passwd entry) is given, which means no supplementary groups.
        self.user_name = user_name
        #: ``group=`` as written (a name or an id), None when it was not given.
        self.group = group

    def __repr__(self) -> str:
        return (
            f"Identity(uid={self.uid!r}, gid={self.gid!r}, user_name={self.user_name!r},"
            f" group={self.group!r})"
        )


def parse_identity(user: object, group: object) -> Identity | None:
    """The ids for ``user=``/``group=``, None when neither is given.

    Raises:
        ConfigError: an unknown name, an id out of range, a uid without a
            passwd entry and no group, a change of identity without root, or an
            id outside this user namespace.
    """
    if user is None and group is None:
        return None
    import grp
    import pwd

    uid = gid = None
    user_name = None
    if user is not None:
        entry = _lookup("user", user, pwd.getpwnam, pwd.getpwuid)
        if entry is None:
            uid = _require_id("user", user)
        else:
            uid, gid, user_name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group is not None:
        gentry = _lookup("group", group, grp.getgrnam, grp.getgrgid)
        gid = _require_id("group", group) if gentry is None else gentry.gr_gid
    if uid is not None and gid is None:
        # A uid with no passwd entry has no primary group: dropping the uid alone
        # would leave the daemon in root's group.
        raise ConfigError("user", f"uid {uid} has no passwd entry; give group= too")
    if os.geteuid() != 0:
        if uid is not None and uid != os.geteuid():
            raise ConfigError("user", "changing identity needs root", needs_privilege=True)
        if gid is not None and gid != os.getegid():
            # Our own user= is fine: the group is what would change (group=, or
            # the user's primary group after a `newgrp`), so name that.
            raise ConfigError(
                "group" if group is not None else "user",
                f"changing identity needs root (to group {gid}; we run as group {os.getegid()})",
                needs_privilege=True,
            )
    # In a user namespace (``unshare -r``, a rootless container) an id outside
    # its map cannot be taken, nor given a file: each later step failed with
    # EINVAL, the pidfile's chown as a traceback.
    if uid is not None and not _mapped("uid", uid):
        raise ConfigError(
            "user", f"uid {uid} is not mapped in this user namespace (/proc/self/uid_map)"
        )
    if gid is not None and not _mapped("gid", gid):
        raise ConfigError(
            "group" if group is not None else "user",
            f"gid {gid} is not mapped in this user namespace (/proc/self/gid_map)",
        )
    written = group if isinstance(group, str | int) else None
    return Identity(uid, gid, user_name, written)


def _mapped(kind: str, number: int) -> bool:
    """Whether ``number`` is in ``/proc/self/{kind}_map`` (True when it cannot be read)."""
    try:
        with open(f"/proc/self/{kind}_map", "rb") as f:
            ranges = [[int(field) for field in line.split()] for line in f]
        return any(first <= number < first + count for first, _, count in ranges)
    except (OSError, ValueError):
        return True  # no /proc: the drop itself says what fails


def effective_user() -> str:
    """Our effective user's name for messages, or ``uid N`` when it has no passwd entry."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _lookup(option: str, value: object, by_name: Any, by_id: Any) -> Any:
    """The passwd/group entry for a name or id; None for an id with no entry."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(option, f"must be a name or a numeric id, not {shown(value)}")
    # isascii: "²" and "١٢" are str.isdigit() but not ids (int("²") raises).
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        try:
            return by_name(value)
        except (KeyError, ValueError):
            raise ConfigError(option, f"unknown {option} {shown(value)}") from None
    try:
        return by_id(int(value))
    except (KeyError, OverflowError, ValueError):
        return None


def _require_id(option: str, value: object) -> int:
    # Counted first: int() refuses thousands of digits (a ValueError traceback).
    if isinstance(value, str) and len(value.lstrip("0")) > 10:
        raise ConfigError(option, f"id out of range: {shown(value)}")
    number: int = int(value)  # type: ignore[call-overload]
    if not 0 <= number < 2**32 - 1:
        raise ConfigError(option, f"id out of range: {shown(value)}")
    return number
