"""The ``stdout`` and ``stderr`` files follow a log rotation, as ``log_file`` does.

A detached daemon without ``log_file`` or ``syslog`` logs to its ``stderr``
file, and a program's prints and tracebacks land in ``stdout``/``stderr`` in
any case: logrotate's ``create`` + ``postrotate`` recipe must move them to the
new file too, or the daemon writes into the rotated one for ever (and, once
logrotate deletes it, into a deleted file that still fills the disk). nginx
does the same with its error log at SIGUSR1.

Unlike the log file, a standard stream is reopened only when its path names
another file now (or none): a file still in place is left alone, so a daemon
that dropped privileges and cannot reopen root's file in a root-only directory
costs no warning at every SIGHUP. Nor is a file the program put on fd 1 or 2
itself (an old daemon habit: close fds 0-2, then open data files, which take
them): the fd is reopened only while it holds the file aiodaemon put there,
else its data would go into the new ``stdout`` file; the log says so once
(``output file replaced, left alone``). The new file is opened with the same rules
as at start (``O_NOFOLLOW``, a regular file, not planted by another user) and
put onto fd 1 or 2 with ``dup2``, so everything writing there (the log writer,
``print``, the interpreter's tracebacks, child processes started later) moves
with it.
"""

from __future__ import annotations

import os
import stat

from .._prefork._logsinks import names_another

__all__ = ["OutputFile"]


class OutputFile:
    """A ``stdout`` or ``stderr`` file on fd 1 or 2, moved to the file at its path after a rotation.

    Args:
        fd: 1 or 2.
        option: ``"stdout"`` or ``"stderr"`` (for messages).
        path: the configured path.
        reopen_path: the path as seen after a chroot; None when the file is outside it.
        owner: the uid the daemon drops to (its file is accepted in a shared sticky directory).
    """

    def __init__(
        self, fd: int, option: str, path: str, reopen_path: str | None, owner: int | None
    ) -> None:
        self.fd = fd
        self.option = option
        self.path = path
        self.reopen_path = reopen_path
        self.owner = owner
        #: the file aiodaemon put on the fd (``st_dev``, ``st_ino``); None while
        #: the fd holds something else (an upgrade's successor: a pipe, see put_back).
        self.held = _regular_file(fd)
        #: whether the log said the program put its own file on the fd.
        self.told_replaced = False

    def __repr__(self) -> str:
        return f"{self.option} {self.path}"

    def moved(self, fd: int | None = None) -> bool:
        """Whether the fd (or ``fd``) holds a regular file that the path no longer names.

        False while it holds anything else: an upgrade's successor has a pipe
        to the old daemon on fd 2 until it takes over (see :meth:`put_back`).
        False when the path cannot be looked at (outside the chroot, or a
        directory closed to us).
        """
        if self.reopen_path is None:
            return False
        try:
            held = os.fstat(self.fd if fd is None else fd)
        except OSError:
            return False
        return stat.S_ISREG(held.st_mode) and names_another(self.reopen_path, held)

    def replaced(self) -> bool:
        """Whether the fd holds another file than the one aiodaemon put there.

        The program closed it and its own file took the fd: that file's data
        must not go into the ``stdout``/``stderr`` file at a reopen.
        """
        held = _regular_file(self.fd)
        return self.held is not None and held is not None and held != self.held

    def reopen(self) -> None:
        """Open the file at the path and put it on the fd; the old file is closed.

        Raises:
            OSError: the file cannot be opened or is refused; the fd keeps the old file.
        """
        assert self.reopen_path is not None  # only after moved()
        # Loaded by acquire when it opened the file, before any chroot or
        # privilege drop (an upgrade's successor, refused under a chroot, reads
        # it from the package it was started from): a daemon without these
        # options never pays for it.
        from .._prefork._safeopen import open_append

        new = open_append(self.reopen_path, owner=self.owner)
        try:
            # Atomic for every thread writing to the fd: each write lands whole
            # in the old file or in the new one. Standard fds stay inheritable.
            os.dup2(new, self.fd)
        finally:
            os.close(new)
        self.held = _regular_file(self.fd)

    def put_back(self, held: int) -> None:
        """Put ``held``, this stream's file when it was inherited, back on the fd.

        For an upgrade's successor taking over (its stderr was a pipe to the old
        daemon meanwhile): if a rotation moved the file since, the file at the
        path instead, in one ``dup2``, so no record lands in the rotated file
        after others reached the new one. A file that cannot be opened leaves
        ``held`` on the fd; the writer's next look at the path says why.
        """
        if self.moved(held):
            try:
                self.reopen()
            except OSError:
                pass
            else:
                return
        os.dup2(held, self.fd)
        self.held = _regular_file(self.fd)


def _regular_file(fd: int) -> tuple[int, int] | None:
    """The ``st_dev`` and ``st_ino`` of the regular file on ``fd``; None for anything else."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
