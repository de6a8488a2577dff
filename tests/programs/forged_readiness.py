"""A daemon whose startup hook, run after the drop, forges the readiness pipe's messages.

What a service account compromised later can do from inside its daemon: the
hook writes ``P<pid>`` (argv[2], another process's pid) on every pipe the
daemon may write (the launcher's readiness pipe among them), then either
fails (argv[3] ``fail``) or never becomes ready (``hang``), as if the
launcher were to stop that process instead of the daemon. The daemon's own
pid is written to the file argv[4] first, for the test to clean up.
Usage: ``forged_readiness.py OPTIONS_JSON PID fail|hang MARK``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
from pathlib import Path

import aiodaemon

FORGED_PID, MODE, MARK = int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])


def _pipes_we_may_write() -> list[int]:
    """Our descriptors that are write ends of pipes."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
                flags = int(info.read().split(b"flags:")[1].split()[0], 8)
        except (OSError, ValueError, IndexError):
            continue
        if flags & os.O_ACCMODE == os.O_WRONLY:
            found.append(fd)
    return found


@aiodaemon.on_startup
async def forge() -> None:
    """Name another process as the daemon on the launcher's pipe, then fail or hang."""
    MARK.write_text(f"{os.getpid()}\n")
    for fd in _pipes_we_may_write():
        with contextlib.suppress(OSError):
            os.write(fd, f"P{FORGED_PID}\n".encode())
    if MODE == "fail":
        raise RuntimeError("failing after the forgery")
    await asyncio.sleep(3600)


async def main() -> None:
    """Never reached."""
    await asyncio.sleep(3600)


if __name__ == "__main__":
    aiodaemon.run(main, **json.loads(sys.argv[1]))
