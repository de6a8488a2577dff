"""The event loop: creating it, and describing what runs on it for the logs."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import traceback
from typing import TYPE_CHECKING, Any

from .._prefork._inherited import address_space_limit
from ..exceptions import StartupError

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["await_chain", "loop_name", "new_event_loop", "sockname"]


def new_event_loop(choice: bool | None) -> asyncio.AbstractEventLoop:
    """A new loop: uvloop when installed (``None``), required (``True``) or never (``False``).

    Raises:
        StartupError: ``uvloop=True`` and it cannot be imported, too few
            descriptors are left for a loop, or too little memory.
    """
    _check_descriptors_left()
    try:
        if choice is not False:
            try:
                from ._uvloop_signals import Loop
            except ImportError as exc:
                if choice:
                    raise StartupError("uvloop=True but uvloop cannot be imported") from exc
            else:
                loop: asyncio.AbstractEventLoop = Loop()
                return loop
        # Loaded here, not at import: with uvloop it is never needed (launch's
        # _preload loads it, before a chroot or a drop, when it will be).
        from ._selector_loop import SelectorEventLoop

        return SelectorEventLoop()
    except MemoryError as exc:
        # A low RLIMIT_AS: libuv allocates its loop (and io_uring's rings) here.
        # Uncaught, it ended the daemon before ready with no word to the launcher.
        limit = address_space_limit()
        raise StartupError(
            "cannot create the event loop: out of memory" + (f"; {limit}" if limit else "")
        ) from exc


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: the loop the ``starting`` record names."""
    # Ours, asyncio's or uvloop's own with a few fixes, is still theirs to a reader of the log.
    if isinstance(loop, asyncio.SelectorEventLoop):
        return "asyncio"
    # The first class not ours (the MRO ends with object, which is not).
    theirs = next(c for c in type(loop).__mro__ if not c.__module__.startswith("aiodaemon."))
    return theirs.__module__.split(".")[0]


#: Descriptors a loop takes for itself while it starts (epoll, io_uring, eventfd,
#: its signal socketpair and wake-up pipes: 10 with uvloop), and a margin.
LOOP_DESCRIPTORS = 16


def _check_descriptors_left() -> None:
    """Refuse to create a loop that would run out of descriptors while it starts.

    libuv aborts the whole process (SIGABRT, nothing cleaned up) when a
    descriptor it needs at start cannot be had; an error line is better. A dup
    of fd 0 (always open, see _stdfds) stands for each of them.

    Raises:
        StartupError: fewer than :data:`LOOP_DESCRIPTORS` are left.
    """
    taken: list[int] = []
    try:
        for _ in range(LOOP_DESCRIPTORS):
            taken.append(os.dup(0))
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):  # out of them: us, or the system
            raise
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        raise StartupError(
            f"cannot create the event loop: {len(taken)} file descriptors left,"
            f" it needs {LOOP_DESCRIPTORS} (RLIMIT_NOFILE {soft})"
        ) from exc
    finally:
        for fd in taken:
            os.close(fd)


def await_chain(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits, through every coroutine it awaits.

    ``Task.get_stack`` stops at the task's own coroutine, which for a hook run
    by the shutdown sequence would hide the hook that hangs.
    """
    lines = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines)


def thread_stack(frame: FrameType) -> str:
    """A thread's stack at ``frame`` (from ``sys._current_frames()``), innermost call last.

    What a blocked loop's own thread runs: the call blocking it, which no
    task's await chain shows.
    """
    return "".join(traceback.format_stack(frame)).rstrip()


def sockname(sock: socket.socket, configured: object = None) -> str:
    """``host:port``, ``[v6]:port``, ``:port`` (dual-stack), ``unix:/path`` or ``unix:@name``.

    ``configured``: the socket's address option; a ``unix:`` one names a socket
    bound through ``/proc/self/fd`` (a path past ``sun_path``) by its path.
    """
    try:
        name = sock.getsockname()
    except OSError:
        return "closed"
    if sock.family == socket.AF_INET6:
        if name[0] == "::" and _dual_stack(sock):
            # As listen= takes it: ":8080" is every IPv4 and IPv6 address, and
            # "[::]:8080" IPv6 only; shown alike, the two could not be told apart.
            return f":{name[1]}"
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    from .._prefork._sunpath import shown_unix_name

    return f"unix:{shown_unix_name(name, getattr(configured, 'path', None))}"


def _dual_stack(sock: socket.socket) -> bool:
    """Whether an IPv6 socket also takes IPv4 (``IPV6_V6ONLY`` off)."""
    try:
        return not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    except OSError:
        return False
