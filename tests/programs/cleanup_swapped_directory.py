"""A failed start's cleanup by root, with the files' directory swapped for a symlink mid-way.

The daemon drops to nobody and its startup hook fails; the launcher, still
root, then removes what the start left: the pidfile, the control and
listening sockets, the stdout and stderr files it created. The account the
daemon dropped to may own a directory above them: here the directory is
swapped for a symlink at the worst moment, just before the launcher unlinks
the file named ``argv[3]`` (an audit hook in the launcher makes that moment
exact). Usage: ``cleanup_swapped_directory.py RUN_DIR ELSEWHERE NAME``.
"""

from __future__ import annotations

import os
import sys

import aiodaemon

RUN, ELSEWHERE, NAME = sys.argv[1], sys.argv[2], sys.argv[3]
LAUNCHER = os.getpid()
swapped = False


def swap_before_the_unlink(event: str, args: tuple[object, ...]) -> None:
    global swapped
    path = args[0] if args else None
    if event != "os.remove" or swapped or os.getpid() != LAUNCHER:
        return
    if isinstance(path, str) and os.path.basename(path) == NAME:
        swapped = True
        os.rename(RUN, RUN + ".moved")
        os.symlink(ELSEWHERE, RUN)
        print("swapped", flush=True)


@aiodaemon.on_startup
async def fail() -> None:
    raise RuntimeError("the startup hook fails")


async def main() -> None:
    raise AssertionError("never reached: the startup hook fails")


sys.addaudithook(swap_before_the_unlink)
aiodaemon.run(
    main,
    detach=True,
    pidfile=f"{RUN}/app.pid",
    listen={"app": f"unix:{RUN}/app.sock"},
    stdout=f"{RUN}/out.log",
    stderr=f"{RUN}/err.log",
    user="nobody",
)
