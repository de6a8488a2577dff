"""A daemon whose startup hook, run after the drop, forges the readiness pipe's messages.

What a service account compromised later can do from inside its daemon: the
hook writes ``P<pid>`` (argv[2], another process's pid) on the launcher's
readiness pipe (the pipe it may write whose read end it lacks), then either
fails (argv[3] ``fail``) or never becomes ready (``hang``), as if the
launcher were to stop that process instead of the daemon. With ``flood``
it writes a line of 64 MiB instead, then fails; with ``endless``, a line
that never ends. The daemon's own
pid is written to the file argv[4] first, for the test to clean up.
Usage: ``forged_readiness.py OPTIONS_JSON PID fail|hang|flood|endless MARK``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import stat
import sys
from pathlib import Path

import aiodaemon

FORGED_PID, MODE, MARK = int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])


def _launchers_pipe() -> list[int]:
    """Our write ends of pipes whose read end is not ours: the launcher's readiness pipe."""
    writers: dict[int, list[int]] = {}
    read_here: set[int] = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            st = os.fstat(fd)
            if not stat.S_ISFIFO(st.st_mode):
                continue
            with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
                flags = int(info.read().split(b"flags:")[1].split()[0], 8)
        except (OSError, ValueError, IndexError):
            continue
        if flags & os.O_ACCMODE == os.O_WRONLY:
            writers.setdefault(st.st_ino, []).append(fd)
        else:
            read_here.add(st.st_ino)
    return [fd for inode, fds in writers.items() if inode not in read_here for fd in fds]


def _flood(fd: int, size: int) -> None:
    """Write ``size`` bytes without a newline on ``fd``, giving up once nobody reads it for 1 s."""
    os.set_blocking(fd, False)
    block = b"x" * 65536
    data = memoryview(block)
    while size > 0:
        if not select.select([], [fd], [], 1.0)[1]:
            return  # one of the daemon's own pipes, which nobody drains
        with contextlib.suppress(BlockingIOError):
            size -= os.write(fd, data[: min(size, len(block))])
        if size <= 0 and data.obj is block:
            # The line ends: the daemon's own verdict, which follows, starts a line.
            data, size = memoryview(b"\n"), 1


@aiodaemon.on_startup
async def forge() -> None:
    """Name another process as the daemon on the launcher's pipe (or flood it); fail or hang."""
    MARK.write_text(f"{os.getpid()}\n")
    for fd in _launchers_pipe():
        with contextlib.suppress(OSError):
            if MODE == "flood":
                _flood(fd, 64 << 20)
            elif MODE == "endless":
                _flood(fd, 1 << 62)
            else:
                os.write(fd, f"P{FORGED_PID}\n".encode())
    if MODE in ("fail", "flood"):
        raise RuntimeError("failing after the forgery")
    await asyncio.sleep(3600)


async def main() -> None:
    """Never reached."""
    await asyncio.sleep(3600)


if __name__ == "__main__":
    aiodaemon.run(main, **json.loads(sys.argv[1]))
