"""``aiodaemon stop`` removing a stale pidfile, its directory swapped for a symlink mid-way.

Whoever owns a directory above the pidfile (the account a dead daemon ran
as) may swap that directory for a symlink between root's checks of the
stale file and its unlink: here just before the unlink (an audit hook makes
that moment exact). Usage: ``stale_swapped_directory.py RUN_DIR ELSEWHERE``;
the pidfile is ``RUN_DIR/app.pid``.
"""

from __future__ import annotations

import os
import runpy
import sys

RUN, ELSEWHERE = sys.argv[1], sys.argv[2]
swapped = False


def swap_before_the_unlink(event: str, args: tuple[object, ...]) -> None:
    global swapped
    path = args[0] if args else None
    if event != "os.remove" or swapped or not isinstance(path, str):
        return
    if os.path.basename(path) == "app.pid":
        swapped = True
        os.rename(RUN, RUN + ".moved")
        os.symlink(ELSEWHERE, RUN)
        print("swapped", flush=True)


sys.addaudithook(swap_before_the_unlink)
sys.argv = ["aiodaemon", "stop", "--pidfile", f"{RUN}/app.pid"]
runpy.run_module("aiodaemon", run_name="__main__", alter_sys=True)
