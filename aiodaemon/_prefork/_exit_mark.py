"""The mark of a daemon in its last steps: its pidfile removed, its process not gone yet.

The daemon removes its pidfile among the last things it gives back, and its
process goes on for a moment: the interpreter's exit (threads joined, the
``atexit`` functions, the finalizers) takes tens of milliseconds, more with
the program's own. A ``stop`` then found no pidfile and said "not running",
exit 0, while the process still existed: a script that went on to start
another on the same port, or to remove its files, lost that race. So, just
before it removes (or empties) the file, the daemon listens on an abstract
unix socket named after the pidfile's path (:func:`exit_mark`), and keeps
it, with the file's descriptor, until its process ends. The commands find it
there (``_cli._exiting``), and believe it only of a process that has that
very file open for writing.

From the end of ``run()`` until the interpreter's exit the program's own code
runs, which may go on working with the daemon over (a report to upload): the
mark is withdrawn then (:func:`withdraw`) and put back once the interpreter
begins to exit (:func:`put_back`).

Never imports asyncio; ``_socket`` is loaded by then (asyncio imports it).
"""

from __future__ import annotations

import binascii
import os

__all__ = [
    "canonical_path",
    "exit_mark",
    "keep_until_exit",
    "let_go",
    "open_exit_mark",
    "put_back",
    "withdraw",
]


def exit_mark(path: str) -> str:
    """The abstract unix socket name of the daemon exiting after removing pidfile ``path``.

    Made from the path as ``/proc`` shows the daemon's open pidfile
    (:func:`canonical_path`), by the daemon and the commands alike. A short
    checksum, not the path, keeps any path within the 107 bytes a name may
    have; names that collide only let one daemon mark its exit at a time (the
    commands check the process, never the name).
    """
    canonical = os.fsencode(canonical_path(path))
    return f"\0aiodaemon-exiting-{len(canonical)}-{binascii.crc32(canonical):08x}"


def canonical_path(path: str) -> str:
    """``path`` as ``/proc/PID/fd`` names a file opened at it.

    Its directory's real path and its own name (a pidfile is never a symlink).
    """
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(directory), name)


def open_exit_mark(name: str) -> int | None:
    """A socket listening on ``name``, as a bare descriptor; None if it cannot be had.

    Bare: a socket object would be closed by the interpreter's finalizers,
    before the process is gone. Never accepting, it keeps each command's
    connection queued until then.
    """
    import _socket

    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        sock.bind(name)
        sock.listen(_socket.SOMAXCONN)
    except OSError:
        sock.close()  # the name taken (by anyone): the commands say "not running", as they did
        return None
    return int(sock.detach())


class _Kept:
    """The mark's name and descriptor (None while withdrawn) and the pidfile's descriptor."""

    __slots__ = ("mark", "name", "pidfile")

    def __init__(self, name: str, mark: int | None, pidfile: int) -> None:
        self.name = name
        self.mark = mark
        self.pidfile = pidfile


_kept: _Kept | None = None
_fork_hook = False


def keep_until_exit(name: str, mark: int, pidfile: int) -> None:
    """Keep ``mark`` (listening on ``name``) and ``pidfile`` open until the process ends."""
    global _kept, _fork_hook
    let_go()
    _kept = _Kept(name, mark, pidfile)
    if not _fork_hook:
        _fork_hook = True
        # A child forked in the last steps (an atexit function's) must not
        # keep the mark past the daemon's end, nor the name from its next run.
        os.register_at_fork(after_in_child=let_go)


def withdraw() -> None:
    """Stop marking: the daemon's run has ended, and the program's own code goes on."""
    if _kept is not None and _kept.mark is not None:
        _close(_kept.mark)
        _kept.mark = None


def put_back() -> None:
    """Mark again, the interpreter's exit having begun (if the name is still free)."""
    if _kept is not None and _kept.mark is None:
        _kept.mark = open_exit_mark(_kept.name)


def let_go() -> None:
    """Close what is kept: a new ``run()`` in this process, whose own end marks its exit."""
    global _kept
    kept, _kept = _kept, None
    if kept is not None:
        if kept.mark is not None:
            _close(kept.mark)
        _close(kept.pidfile)


def _close(fd: int) -> None:
    try:  # noqa: SIM105 (no contextlib: aiodaemon.pep3143's programs load this module)
        os.close(fd)
    except OSError:
        pass
