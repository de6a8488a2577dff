"""Where a PEP 3143 program's pidfile lives, for ``aiodaemon.pep3143``.

python-daemon and pep3143daemon take their pidfile in the daemon, after the
chroot and the chdir; aiodaemon locks its ``PidFile`` in the calling process,
before both (so "already running" reaches the caller, and the file may sit in
a root-only ``/run``). A relative path must still name the file the original
libraries create, so it is resolved here, ahead of time, the way the daemon
will see it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["inside_chroot", "pidfile_location"]


def inside_chroot(root: StrPath, workdir: StrPath) -> str:
    """``workdir`` as seen inside the chroot ``root``.

    python-daemon takes it inside already; pep3143daemon takes a host path
    under ``root`` (``/srv/jail/data`` for ``/data``): both are understood.
    """
    root_path = os.path.normpath(os.fspath(root))
    path = os.path.normpath(os.fspath(workdir))
    if root_path != "/" and (path == root_path or path.startswith(root_path + "/")):
        return "/" + os.path.relpath(path, root_path).removeprefix(".")
    return path


def pidfile_location(path: StrPath, workdir: StrPath, root: StrPath | None) -> str:
    """The path, valid in the calling process, of the file the daemon would open as ``path``.

    An absolute ``path`` is a path of the calling process, as aiodaemon always
    took it (so ``/run/foo.pid`` stays outside a chroot). A relative one is
    under ``workdir``, inside ``root`` when there is one: where python-daemon
    and pep3143daemon, which open it after their chroot and chdir, put it.

    Args:
        path: the ``PidFile``'s path.
        workdir: the context's ``working_directory``.
        root: the context's ``chroot_directory``, or None.
    """
    path = os.fspath(path)
    if os.path.isabs(path):
        return path
    if root is None:
        return os.path.join(os.getcwd(), workdir, path)
    # Lexically inside the jail: ".." stops at its root there, as the kernel
    # stops it at the root of a chrooted process.
    inside = os.path.normpath(os.path.join("/", inside_chroot(root, workdir), path))
    return os.path.join(os.getcwd(), root, inside.lstrip("/"))
