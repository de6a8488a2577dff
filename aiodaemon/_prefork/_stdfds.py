"""Standard descriptors 0-2: never left closed, so nothing acquired can land on them.

cron, some supervisors and ``cmd <&-`` start a program with fd 0, 1 or 2
closed. The kernel hands out the lowest free descriptor, so the pidfile or the
log file would become fd 0-2, and the detach, which points 0-2 at /dev/null or
the stdio files, would then close it under the daemon. Opening /dev/null onto
every closed standard fd first keeps every later descriptor above 2.
"""

from __future__ import annotations

import errno
import io
import os
import sys

from ..exceptions import StartupError

__all__ = ["controlling_terminal", "fill_std_fds", "text_stream"]


def fill_std_fds() -> None:
    """Open /dev/null onto each closed fd of 0, 1 and 2, and give Python its streams back.

    Raises:
        StartupError: one is closed and /dev/null cannot be opened (a bare ``/dev``).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # The lowest free descriptor: this very fd, as the lower ones are open.
            try:
                null = os.open(os.devnull, os.O_RDWR | os.O_NOCTTY)
            except OSError as failed:
                if sys.stderr is None:
                    # Closed too: print() would take the line to stdout instead.
                    sys.stderr = io.StringIO()
                raise StartupError(
                    f"cannot open {os.devnull} for the closed fd {fd}: {failed.strerror}"
                ) from None
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            # A standard fd is inherited by child processes, unlike os.open's.
            os.set_inheritable(fd, True)
    # Python sets a stream to None when its fd was closed at start-up; code that
    # prints (a start's error line, a pid) must find a file there, not None.
    # No stream to take an encoding and error handler from: the locale's.
    if sys.stdin is None:
        sys.stdin = text_stream(0, "r", None, None)
    if sys.stdout is None:
        sys.stdout = text_stream(1, "w", None, None, line_buffering=True)
    if sys.stderr is None:
        sys.stderr = text_stream(2, "w", None, None, line_buffering=True, errors="backslashreplace")


def text_stream(
    fd: int,
    mode: str,
    old: object,
    original: object,
    *,
    line_buffering: bool = False,
    errors: str = "strict",
) -> io.TextIOWrapper:
    """A text stream on ``fd`` that encodes, and writes through, as the stream it replaces did.

    Python chose that stream's encoding and error handler from the locale,
    ``PYTHONIOENCODING`` and UTF-8 mode: ``surrogateescape`` in the C locale
    (systemd's, cron's), so that a file name that is not UTF-8 prints. A bare
    ``TextIOWrapper`` would be strict and raise ``UnicodeEncodeError`` on it,
    ending a daemon that python-daemon (which keeps the old objects) runs.
    ``original`` (``sys.__stdout__`` and the like) answers when the program
    replaced ``old`` by something without an encoding (a ``StringIO``). With
    neither, the locale's encoding and ``errors``. Under ``python -u`` (or
    ``PYTHONUNBUFFERED``) Python's streams write through, a partial line
    included (a progress indicator): so does the new one, as python-daemon's
    old object did.
    """
    raw = io.FileIO(fd, mode, closefd=False)
    for stream in (old, original):
        encoding = getattr(stream, "encoding", None)
        handler = getattr(stream, "errors", None)
        if isinstance(encoding, str) and isinstance(handler, str):
            return io.TextIOWrapper(
                raw,
                encoding=encoding,
                errors=handler,
                line_buffering=line_buffering,
                write_through=getattr(stream, "write_through", False) is True,
            )
    return io.TextIOWrapper(raw, encoding="locale", errors=errors, line_buffering=line_buffering)


def controlling_terminal() -> tuple[int, int] | None:
    """The (major, minor) device of this process's controlling terminal; None without one.

    Read from ``/proc/self/stat`` (``tty_nr``): ``/dev/tty`` would name itself.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            # After the command's ")": state, ppid, pgrp, session, tty_nr.
            tty_nr = int(f.read().rsplit(b")", 1)[1].split()[4])
    except (OSError, ValueError, IndexError):
        return None
    if tty_nr == 0:
        return None
    return (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
