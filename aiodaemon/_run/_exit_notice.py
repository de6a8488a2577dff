"""Telling how the process ended: a line on stderr, the status to a waiting ``aiodaemon stop``.

The graceful end tells its status (:mod:`._runner`), and so do the forced
exits (:mod:`._forced`, :mod:`._process_end`), from inside a signal handler
too: what they call here makes system calls only, none that could block.

The command is not the daemon's parent: it sees the process go, never its
status, and said "stopped" of a shutdown forced past ``shutdown_timeout`` as
of a graceful one. A stop request that asks to watch leaves a copy of its
connection here; each way the process ends writes one line to every copy, the
protocol's ``{"v": 1, "ok": true, "exit": status, "reason": why}``: the
graceful end once its status is known, and a forced one just before its
``os._exit``, so the last line the command reads is the status the process
ended with. The kernel closes the copies at the exit, which ends the
command's read. Plain ``os.write`` on sockets asyncio made non-blocking: safe
inside the forced exit's signal handler, and never waiting on a reader.
A `stop` that had to send SIGTERM (no control socket) holds a claim on it, an
abstract unix socket it listens on while it waits (aiodaemon._cli._stop_claim):
the same line goes there, on a connection it reads once the process is gone.
A `stop` that finds the daemon stopping already and has no watched connection
(its loop held up by sync code, its control socket closed at the very end,
another `stop` holding the claim) listens on one of :data:`WATCH_SLOTS` names
derived from the claim's, and hears the same line there. So does a `start` that
waited for the daemon to be ready and found it stopping (_cli._start_after_start):
the line's ``ready`` tells it whether the daemon had been.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys

import orjson

__all__ = [
    "MAX_EXIT_WATCHERS",
    "WATCH_SLOTS",
    "expect_stop_claim",
    "note_ready",
    "say_forced_exit",
    "say_nowait",
    "tell_exit",
    "watch_exit",
    "write_nowait",
]

#: Copies of stop connections kept at most: each is a descriptor of the daemon's.
MAX_EXIT_WATCHERS = 8
#: Names beside the claim's that waiting ``stop`` commands listen on (see
#: ``_stop_claim.watch_stop``, which a test holds to the same names).
WATCH_SLOTS = 8

_exit_watchers: list[int] = []

#: The abstract name a signalling ``stop`` claims our SIGTERM under, then its watch
#: slots' names, each told the exit, once the shutdown began (see
#: :func:`expect_stop_claim`); () before, or unknown.
_exit_names: tuple[str, ...] = ()
#: Whether the run reported ready (see :func:`note_ready`), told with the exit.
_ready = False


def say_forced_exit(status: int, why: str) -> None:
    """Say a forced exit on stderr (if it takes it at once) and to a watching ``stop``.

    Each attempted once, whatever the other did: the process ends next.
    """
    with contextlib.suppress(BaseException):
        say_nowait(f"aiodaemon: forced exit ({why}), status {status}\n")
    with contextlib.suppress(BaseException):
        tell_exit(status, f"forced exit ({why})")


def say_nowait(text: str) -> None:
    """Write ``text`` (its first ``PIPE_BUF`` bytes) to fd 2 only if that cannot block."""
    write_nowait(text.encode("utf-8", "backslashreplace")[: select.PIPE_BUF])


def write_nowait(data: bytes) -> int:
    """Write ``data`` to fd 2 as far as that cannot block; how many bytes it did not take.

    Our fd 2 is shared (a supervisor's pipe): it stays blocking, and each
    write is one that ``poll`` allows, at most ``PIPE_BUF`` bytes (which a
    pipe takes whole and at once when it has room). A stalled pipe, a closed
    fd 2 or a reader gone take nothing: there is nobody to tell. A terminal
    may take part of such a write and hold the rest until it is read (a
    stalled ssh connection): it is written through a non-blocking
    descriptor of its own, where it can be opened.
    """
    terminal = _terminal_nowait()
    if terminal is not None:
        try:
            return len(data) - os.write(terminal, data)
        except OSError:  # EAGAIN: it takes nothing now; EIO: it hung up
            return len(data)
        finally:
            os.close(terminal)
    poller = select.poll()
    poller.register(2, select.POLLOUT)
    view = memoryview(data)
    try:
        while view and any(events & select.POLLOUT for _, events in poller.poll(0)):
            view = view[os.write(2, view[: select.PIPE_BUF]) :]
    except OSError:
        pass
    return len(view)


def _terminal_nowait() -> int | None:
    """fd 2's terminal opened anew, write-only and non-blocking; None if fd 2 is none.

    Also None when it cannot be opened (a chroot hides it, a dropped user may
    not open it): fd 2 is then written as a pipe would be.
    """
    try:
        if not os.isatty(2):
            return None
        return os.open(os.ttyname(2), os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None


def watch_exit(fd: int) -> bool:
    """Keep a copy of the connection ``fd`` to tell it the exit.

    False when enough are kept, or when no copy can be made (out of
    descriptors): the stop is answered all the same, unwatched, and the
    command hears the exit as one past the watchers' limit does.
    """
    from .._prefork._detach import close_in_forked_children

    if len(_exit_watchers) >= MAX_EXIT_WATCHERS:
        return False
    try:
        copy = os.dup(fd)  # not inherited by an exec'd child (close-on-exec)
    except OSError:  # EMFILE: a watch is a courtesy, never the stop's failure
        return False
    # Nor by a forked one, which would hold the command's read open past our exit.
    close_in_forked_children(copy)
    _exit_watchers.append(copy)
    return True


def note_ready(ready: bool) -> None:
    """Note whether the run has reported ready, for :func:`tell_exit` to say (a new run: False)."""
    global _ready
    _ready = ready


def expect_stop_claim() -> None:
    """Note the names ``stop`` commands hear the exit under: the SIGTERM's claim, the watches.

    On the loop as the shutdown begins: the forced exits that may follow run
    in a signal handler, where ``/proc`` is not read. Named here as
    ``_procfs.signal_claim`` names it (a test holds the two together): that
    module is the commands', and a running daemon imports nothing more (an
    upgrade may have replaced aiodaemon's files on disk by now).
    """
    global _exit_names
    pid = os.getpid()
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        # After the command name (which may hold ")"): the start time is field 19.
        started = int(stat.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return  # out of descriptors, /proc hidden: the stop says only "stopped"
    # _prefork._pidns's value, read here: that module is loaded only with a pidfile.
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    claim = f"\0aiodaemon-stop-{namespace}-{pid}-{started}"
    _exit_names = (claim, *(f"{claim}-watch{k}" for k in range(WATCH_SLOTS)))


def tell_exit(status: int, reason: str | None) -> None:
    """Write the exit's ``status`` and ``reason`` to every stop that waits to hear it."""
    if not _exit_watchers and not _exit_names:
        return
    # orjson, loaded by every daemon: no import here (a signal handler's), and
    # the control protocol's line (version 1) whether or not it serves one.
    message = {"v": 1, "ok": True, "exit": int(status), "reason": reason, "ready": _ready}
    try:
        line = orjson.dumps(message) + b"\n"
    except TypeError:  # a reason with a surrogate (a file name that is not UTF-8)
        message["reason"] = (reason or "").encode("utf-8", "backslashreplace").decode()
        line = orjson.dumps(message) + b"\n"
    for fd in _exit_watchers:
        # A command that left (or stopped reading) has nobody to tell.
        with contextlib.suppress(OSError):
            os.write(fd, line)
    for name in _exit_names:
        # Nobody listening there is refused at once: a few system calls each.
        with contextlib.suppress(OSError):
            _tell_claim(name, line)


def _tell_claim(name: str, line: bytes) -> None:
    """Leave ``line`` on a connection to the claim ``name``, if root or our uid holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        # A unix connect is queued at once, or refused: it never waits.
        sock.setblocking(False)
        sock.connect(name)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        uid = int.from_bytes(creds[4:8], sys.byteorder, signed=True)
        # Anyone may bind the name: the status goes only to a command of root's or ours.
        if uid in (0, os.geteuid()):
            sock.send(line)
    finally:
        sock.close()
