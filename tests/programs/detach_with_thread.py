"""run(detach=True) while a thread of the program runs; argv: the pidfile."""

from __future__ import annotations

import sys
import threading

import aiodaemon

release = threading.Event()
threading.Thread(target=release.wait, name="busy", daemon=True).start()


async def main() -> None:
    pass


aiodaemon.run(main, detach=True, pidfile=sys.argv[1])
