"""Calls aiodaemon.run() (foreground, with a pidfile) from a thread; argv: the pidfile.

The main thread prints ``main thread went on`` if run() ever lets it.
"""

from __future__ import annotations

import sys
import threading

import aiodaemon


async def main() -> None:
    pass


thread = threading.Thread(
    target=aiodaemon.run,
    args=(main,),
    kwargs={"detach": False, "pidfile": sys.argv[1]},
    name="starter",
)
thread.start()
thread.join()
print("main thread went on")
