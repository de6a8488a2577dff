"""Drop phase: terminal, chroot, groups, bounding set, ids, no_new_privs, dumpable, core limit.

Runs in the daemon after the last fork, once everything that needs root (the
pidfile lock, sockets, log files) is held as open descriptors. Never imports
asyncio: no loop exists yet, and after a chroot nothing more can be imported.
"""

from __future__ import annotations

import errno
import os
import resource

from ..exceptions import StartupError

# Annotations only: aiodaemon.pep3143 uses this module in synchronous programs,
# which should not pay for the option parser (logging, ipaddress, pathlib).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._config import Options
    from ._identity import Identity
    from ._prctl import Prctl

__all__ = [
    "disable_core_dumps",
    "drop_privileges",
    "empty_bounding_set",
    "enter_chroot",
    "forbid_new_privileges",
    "group_list",
    "leaves_root",
    "load_unwinder",
    "set_identity",
]

#: prctl(2) options, from <linux/prctl.h>.
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
#: Capability numbers are below 64 (the kernel's last one is 40 today).
_CAP_LIMIT = 64


def leaves_root(options: Options) -> bool:
    """Whether :func:`drop_privileges` will change the uid away from root."""
    identity = options.identity
    return os.geteuid() == 0 and identity is not None and identity.uid not in (None, 0)


def drop_privileges(options: Options) -> None:
    """Give up what the daemon no longer needs, irreversibly.

    Order matters: the controlling terminal goes while ``/dev/tty`` is still
    reachable; chroot needs root, so it comes next; supplementary groups
    and the gid can only be changed while the uid is still root; the uid goes
    last. The group list is looked up before the chroot, while ``/etc/group``
    (and NSS) still describe the host.

    Args:
        options: the validated options; ``chroot``, ``workdir``, ``identity``,
            ``no_new_privileges`` and ``prevent_core`` are used.

    Raises:
        StartupError: any step failed, or root could be regained afterwards.
    """
    identity = options.identity
    was_root = os.geteuid() == 0
    groups = _supplementary_groups(identity) if identity is not None and was_root else None
    leaving = leaves_root(options)
    prctl: Prctl | None = None
    if identity is not None:
        # Loaded before the chroot hides ctypes' files, and only when it will be
        # used: most daemons never load _prctl and ctypes.
        from ._prctl import load_prctl

        prctl = load_prctl()
    lock = prctl if leaving and options.no_new_privileges else None
    # Looked up before the chroot hides /etc/passwd; applied once the ids changed.
    renamed: dict[str, str] = {}
    if leaving and identity is not None and identity.uid is not None:
        renamed = _identity_variables(identity.uid)
    if leaving:
        from ._terminal import give_up_terminal

        # Before the chroot, which may hide /dev/tty: root's terminal must not
        # be the service account's to type into (TIOCSTI).
        give_up_terminal()
    # Where a refusal below says the daemon is: chroot's "/" or the foreground's
    # current directory when no workdir was given (read before the drop).
    where = options.workdir or "/"
    if options.workdir is None and options.chroot is None and identity is not None and was_root:
        where = _current_directory()
    if options.chroot is not None:
        enter_chroot(options.chroot, options.workdir or "/")
    if identity is not None and was_root:
        if lock is not None:
            # CAP_SETPCAP is needed for this: before the uid change takes it away.
            empty_bounding_set(lock)
        set_identity(identity.uid, identity.gid, groups or [])
        os.environ.update(renamed)
        if lock is not None:
            forbid_new_privileges(lock)
        # Entered as root: the user must be able to use it, or every relative
        # path fails later (and an upgrade cannot start the successor there).
        if not os.access(".", os.X_OK):
            who = identity.user_name or f"uid {os.getuid()}"
            raise StartupError(f"workdir {where}: {who} cannot enter it", option="workdir")
    if prctl is not None:
        # The uid change did this already; an upgrade's successor, a fresh exec
        # by the service account, must do it itself: else any process of that
        # account could ptrace it or take its root-bound sockets (pidfd_getfd).
        from ._prctl import set_dumpable

        set_dumpable(False, prctl)
    if options.prevent_core:
        disable_core_dumps()


def _current_directory() -> str:
    """The foreground daemon's current directory, as a refusal names it.

    It may have been removed (a deploy took the release directory its
    supervisor started it in): the daemon runs there all the same, as any
    process can, but it has no path left to show.
    """
    from ._cwd import current_directory

    cwd = current_directory()
    stays = "in the foreground the daemon stays there"
    if cwd is None:
        return f". (the current directory, which was removed: {stays})"
    return f"{cwd} (the current directory: {stays})"


def _identity_variables(uid: int) -> dict[str, str]:
    """``HOME``, ``USER`` and ``LOGNAME`` for the user we drop to, where they describe root.

    Left as root had them, they sent the service account's tools to ``/root``
    (``git``: "unable to read config file '/root/.gitconfig'"). Only a variable
    that is set and holds the launching user's own value is changed, as
    ``su``, ``runuser`` and systemd's ``User=`` do: a ``HOME`` given on purpose
    (``env HOME=/srv/app aiodaemon start --user app``) stays, and none is added.
    """
    import pwd

    try:
        old, new = pwd.getpwuid(os.geteuid()), pwd.getpwuid(uid)
    except KeyError:
        return {}  # a bare uid with no passwd entry: nothing to name it by
    pairs = {
        "HOME": (old.pw_dir, new.pw_dir),
        "USER": (old.pw_name, new.pw_name),
        "LOGNAME": (old.pw_name, new.pw_name),
    }
    return {name: now for name, (was, now) in pairs.items() if os.environ.get(name) == was}


def empty_bounding_set(prctl: Prctl) -> None:
    """Drop every capability from the bounding set, so no later exec can grant one.

    A service manager that already took ``CAP_SETPCAP`` away gets EPERM: the
    set then stays as the manager chose, and ``no_new_privs`` alone still
    keeps an exec from granting anything.

    Raises:
        StartupError: the kernel refused for another reason.
    """
    for cap in range(_CAP_LIMIT):
        error = prctl(_PR_CAPBSET_DROP, cap)
        if error in (errno.EINVAL, errno.EPERM):
            return  # past the last capability this kernel knows, or not ours to drop
        if error:
            raise StartupError(
                f"cannot drop capability {cap} from the bounding set: {os.strerror(error)}"
            )


def forbid_new_privileges(prctl: Prctl) -> None:
    """Set ``PR_SET_NO_NEW_PRIVS``: setuid bits and file capabilities stop working for us.

    Irreversible and inherited by every child, so a compromised daemon cannot
    regain what the drop took by running a setuid or file-capability program.

    Raises:
        StartupError: the kernel refused (older than Linux 3.5).
    """
    error = prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if error:
        raise StartupError(f"cannot set no_new_privs: {os.strerror(error)}")


def enter_chroot(root: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> None:
    """Make ``root`` the process's ``/`` and change to ``workdir`` inside it.

    Raises:
        StartupError: the chroot or the chdir failed.
    """
    load_unwinder()
    try:
        os.chroot(root)
    except OSError as exc:
        raise StartupError(f"cannot chroot to {root}: {_reason(exc)}") from exc
    # The cwd still points outside the new root until we move; a cwd outside
    # is the classic chroot escape, so chdir before anything else runs.
    inside = os.path.join("/", workdir)
    try:
        os.chdir(inside)
    except OSError as exc:
        os.chdir("/")
        raise StartupError(
            f"cannot enter workdir {inside} inside chroot {root}: {_reason(exc)}",
            option="workdir",
        ) from exc


def load_unwinder() -> None:
    """Load libgcc_s now, while the host's libraries are still reachable.

    glibc loads it at the first unwinding of a thread (``pthread_exit``, which
    CPython calls for a thread still running when the interpreter exits), and
    aborts the process when it cannot: in a jail without it, or out of address
    space (``RLIMIT_AS``), every daemon would end with SIGABRT (exit 134)
    instead of its own status. A system without the library (musl, a static
    build) has nothing to load.
    """
    import contextlib

    # OSError: musl or a static build, where nothing needs it. ImportError: a
    # Python built without ctypes; the chroot itself must not fail for this.
    with contextlib.suppress(ImportError, OSError):
        import ctypes

        ctypes.CDLL("libgcc_s.so.1")


def set_identity(uid: int | None, gid: int | None, groups: list[int] | None) -> None:
    """Switch groups, gid and uid (real, effective and saved) as root.

    Args:
        uid: the uid to take; None leaves it alone.
        gid: the gid to take; None leaves it alone.
        groups: the supplementary groups to take (empty: none at all; None:
            leave them, for a process that is not root and may not change them).

    Raises:
        StartupError: a change failed, or root can be regained afterwards.
    """
    if uid is not None and uid != 0 and gid is None:
        # Dropping the uid alone would leave the daemon in group root.
        raise StartupError(f"user {uid}: no group to drop to; set group= as well")
    try:
        # setgroups first: after the gid or uid change we may no longer be allowed to.
        if groups is not None:
            os.setgroups(groups)
    except OSError as exc:
        raise StartupError(f"cannot set supplementary groups {groups}: {_reason(exc)}") from exc
    if gid is not None:
        try:
            # setresgid, not setgid: the saved set-group-ID must go too, or
            # the process could switch back to gid 0 later.
            os.setresgid(gid, gid, gid)
        except OSError as exc:
            raise StartupError(f"cannot change group to {gid}: {_reason(exc)}") from exc
    if uid is not None:
        try:
            os.setresuid(uid, uid, uid)
        except OSError as exc:
            raise StartupError(f"cannot change user to {uid}: {_reason(exc)}") from exc
    _verify_dropped(uid, gid)


def _verify_dropped(uid: int | None, gid: int | None) -> None:
    """Refuse to run when the kernel let us keep a way back to root.

    With ``SECBIT_NO_SETUID_FIXUP`` or ``KEEP_CAPS`` set by a parent, a uid
    change keeps capabilities; only trying tells us the drop holds.
    """
    if uid is not None and os.getresuid() != (uid, uid, uid):
        raise StartupError(f"user change to {uid} did not hold: ids are {os.getresuid()}")
    if gid is not None and os.getresgid() != (gid, gid, gid):
        raise StartupError(f"group change to {gid} did not hold: ids are {os.getresgid()}")
    if uid is None or uid == 0:
        return
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise StartupError(f"dropped to user {uid} but could still regain root; refusing to run")


def disable_core_dumps() -> None:
    """Set ``RLIMIT_CORE`` to 0, soft and hard, so no core file can leak memory contents.

    The hard limit too: otherwise the daemon, or code injected into it, could
    raise the soft limit again.

    Raises:
        StartupError: the limit could not be lowered.
    """
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot set RLIMIT_CORE to 0: {exc}") from exc


def _supplementary_groups(identity: Identity) -> list[int]:
    """The groups to keep: the user's from the group database, or none without a user.

    ``getgrouplist`` + ``setgroups`` is what ``initgroups`` does, split so the
    lookup can happen before a chroot hides ``/etc/group``.

    Raises:
        StartupError: the group database could not be read.
    """
    if identity.user_name is None or identity.uid is None:
        return []
    gid = identity.gid if identity.gid is not None else os.getegid()
    try:
        return group_list(identity.user_name, gid)
    except OSError as exc:
        raise StartupError(f"cannot list groups of {identity.user_name}: {_reason(exc)}") from exc


def group_list(user_name: str, gid: int) -> list[int]:
    """``os.getgrouplist`` of a user name as ``pwd`` decodes it, whatever its bytes.

    ``os.getgrouplist`` encodes the name in UTF-8, not back into the bytes the
    user database holds: a name those bytes do not spell in the locale's
    encoding (``bytés`` under ``LC_ALL=C``, a Latin-1 ``caf\\xe9`` under any
    UTF-8 locale) holds surrogates, which failed it with ``UnicodeEncodeError``.
    A name whose bytes are not UTF-8 is looked for among each group's members.

    Raises:
        OSError: the group database could not be read.
    """
    raw = os.fsencode(user_name)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        import grp

        member_of = {group.gr_gid for group in grp.getgrall() if user_name in group.gr_mem}
        return [gid, *sorted(member_of - {gid})]
    return os.getgrouplist(name, gid)


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
